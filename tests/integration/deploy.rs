//! The deploy files (`deploy/`): every manifest parses, and what it names
//! (probe routes, ports, flags, variables, secrets, the runtime config, the
//! files the image must hold) agrees with the code and with spin.toml. No
//! cluster runs here and no image is built; this checks what can be checked
//! without one.

use chat_host::probes::{HEALTH_PATH, READY_PATH};
use chat_host::runtime_config::{KeyValueStoreConfig, RuntimeConfig};
use chat_manifest::Manifest;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    chat_tests::repo_root().join("deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every Kubernetes manifest in `deploy/kubernetes`, by kind.
fn kubernetes(kind: &str) -> Value {
    let dir = deploy_dir().join("kubernetes");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes") {
        let document = yaml(&entry.unwrap().path());
        if document["kind"] == kind {
            found.push(document);
        }
    }
    assert_eq!(found.len(), 1, "one {kind} in {}", dir.display());
    found.remove(0)
}

fn app_manifest() -> Manifest {
    Manifest::load(&chat_tests::repo_root().join("spin.toml")).expect("spin.toml")
}

/// The value that follows `flag` in a container's arguments.
fn flag<'a>(args: &'a [Value], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|arg| arg == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args[at + 1].as_str().expect("a string argument")
}

fn container() -> Value {
    kubernetes("Deployment")["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn the_deployment_probes_the_hosts_routes_on_the_port_it_listens_on() {
    let container = container();
    let args = container["args"].as_array().expect("args");
    assert_eq!(args[0], "up");
    // chat-host knows every flag (an unknown one fails before `--help`).
    let known = std::process::Command::new(chat_tests::host::host_binary())
        .args(args.iter().map(|arg| arg.as_str().unwrap()))
        .arg("--help")
        .output()
        .expect("running chat-host");
    assert!(
        known.status.success(),
        "{}",
        String::from_utf8_lossy(&known.stderr)
    );
    let listen: std::net::SocketAddr = flag(args, "--listen").parse().expect("--listen");
    assert!(
        listen.ip().is_unspecified(),
        "reachable from the Service: {listen}"
    );
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"], listen.port());
    let port_name = port["name"].as_str().unwrap();
    for (probe, path) in [
        ("readinessProbe", READY_PATH),
        ("livenessProbe", HEALTH_PATH),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port_name, "{probe}");
    }
    let service = kubernetes("Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    let labels = &kubernetes("Deployment")["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service selects the pods");
    }
}

#[test]
fn the_grace_period_covers_the_pre_stop_wait_and_the_drain_deadline() {
    let container = container();
    let args = container["args"].as_array().unwrap();
    let drain: u64 = flag(args, "--drain-deadline").parse().unwrap();
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop sleep");
    let grace =
        kubernetes("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
    assert!(
        grace > pre_stop + drain,
        "grace {grace} s, preStop {pre_stop} s, drain {drain} s"
    );
    assert_eq!(flag(args, "--log-format"), "json");
}

#[test]
fn the_variables_exist_in_spin_toml_and_the_secrets_hold_their_keys() {
    let declared = app_manifest().variables;
    let secret = kubernetes("Secret");
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    let secret_keys = secret["stringData"].as_object().unwrap();
    let secret_reference = |value_from: &Value| {
        let reference = &value_from["secretKeyRef"];
        if !reference.is_null() {
            assert_eq!(reference["name"], secret_name);
            let key = reference["key"].as_str().unwrap();
            assert!(secret_keys.contains_key(key), "the Secret holds {key}");
        }
    };
    for env in container()["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        let variable = name
            .strip_prefix("SPIN_VARIABLE_")
            .unwrap_or_else(|| panic!("{name} is no app variable"))
            .to_ascii_lowercase();
        assert!(
            declared.contains_key(&variable),
            "spin.toml declares {variable}"
        );
        secret_reference(&env["valueFrom"]);
    }
    let spin_app = yaml(&deploy_dir().join("spinkube/spinapp.yaml"));
    assert_eq!(spin_app["kind"], "SpinApp");
    for variable in spin_app["spec"]["variables"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        assert!(declared.contains_key(name), "spin.toml declares {name}");
        secret_reference(&variable["valueFrom"]);
    }
}

#[test]
fn the_runtime_config_puts_the_default_store_in_redis_for_chat_host_and_spinkube() {
    let config_map = kubernetes("ConfigMap");
    let container = container();
    let args = container["args"].as_array().unwrap();
    let config_path = Path::new(flag(args, "--runtime-config-file"));
    let mount = &container["volumeMounts"][0];
    assert_eq!(
        config_path.parent().unwrap(),
        Path::new(mount["mountPath"].as_str().unwrap())
    );
    let volume = &kubernetes("Deployment")["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let text = config_map["data"][file_name].as_str().expect("the file");

    let dir = std::env::temp_dir().join(format!("chat-deploy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(file_name);
    std::fs::write(&file, text).unwrap();
    let config = RuntimeConfig::for_app(Some(&file), &dir).expect("chat-host reads it");
    std::fs::remove_dir_all(&dir).unwrap();
    let KeyValueStoreConfig::Redis { url } = &config.key_value_store["default"] else {
        panic!("the default store is Redis: {config:?}");
    };
    let spin_app = yaml(&deploy_dir().join("spinkube/spinapp.yaml"));
    let store = &spin_app["spec"]["runtimeConfig"]["keyValueStores"][0];
    assert_eq!(
        (
            &store["name"],
            &store["type"],
            &store["options"][0]["value"]
        ),
        (
            &Value::from("default"),
            &Value::from("redis"),
            &Value::from(url.as_str())
        )
    );
}

#[test]
fn the_autoscaler_scales_the_deployment_and_keeps_more_than_one_replica() {
    let hpa = kubernetes("HorizontalPodAutoscaler");
    let deployment = kubernetes("Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
}

#[test]
fn the_image_holds_every_component_spin_toml_names_and_runs_as_no_root() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    // The components precompiled beside a manifest that points at them,
    // served by a chat-host without a compiler.
    for step in [
        "chat-host build --from spin.toml",
        "chat-host precompile --from spin.toml --out /app",
        "cargo build --release -p chat-host --no-default-features",
        "COPY --from=build /src/target/release/chat-host /usr/local/bin/chat-host",
        "COPY --from=build /app/spin.toml /app/spin.toml",
        "COPY --from=build /app/components/ /app/components/",
    ] {
        assert!(dockerfile.contains(step), "the image build does {step:?}");
    }
    let user = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
    let container = container();
    assert_eq!(
        container["securityContext"]["runAsUser"]
            .as_u64()
            .or_else(|| {
                kubernetes("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
                    .as_u64()
            }),
        user.trim().parse::<u64>().ok(),
        "the pod runs as the image's user"
    );
    assert!(dockerfile.contains("EXPOSE 3000"));
    let args = container["args"].as_array().unwrap();
    assert_eq!(flag(args, "--from"), "/app/spin.toml");
}
