//! The `default` key-value store in a SQLite file of its own, declared by a
//! runtime config as Spin declares one: for tests that keep the store
//! across hosts or look inside it.

use std::path::PathBuf;

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// An empty directory with the runtime config naming `kv.db` in it.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("chat-kv-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the store's directory");
        std::fs::write(
            dir.join("runtime-config.toml"),
            "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n",
        )
        .expect("writing the runtime config");
        Self { dir }
    }

    /// The runtime-config file, for `HostConfig::runtime_config_file`.
    pub fn runtime_config(&self) -> PathBuf {
        self.dir.join("runtime-config.toml")
    }

    fn connection(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("kv.db")).expect("opening the store file")
    }

    /// Every entry of the store, its value as text.
    pub fn entries(&self) -> Vec<(String, String)> {
        let store = self.connection();
        let mut rows = store
            .prepare("SELECT key, value FROM spin_key_value WHERE store = 'default'")
            .unwrap();
        rows.query_map([], |row| {
            let value: Vec<u8> = row.get(1)?;
            Ok((row.get(0)?, String::from_utf8_lossy(&value).into_owned()))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Writes an entry while no host holds the store (chat-host reads the
    /// file when it starts).
    pub fn insert(&self, key: &str, value: &[u8]) {
        self.connection()
            .execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                (key, value),
            )
            .expect("writing an entry");
    }
}

impl Default for FileStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
