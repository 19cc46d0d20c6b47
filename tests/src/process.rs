//! Processes the tests start (servers, browsers, agents): each leads a
//! process group of its own and is stopped together with every process it
//! started — SIGKILL to the group — when dropped, whatever the test's
//! outcome. Killing the leader alone would leave its workers behind
//! (nginx's, Chromium's, MLflow's).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

pub struct ProcessGroup {
    leader: Child,
    /// Once stopped and reaped, its id may belong to someone else.
    stopped: bool,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        let leader = command.process_group(0).spawn()?;
        Ok(Self {
            leader,
            stopped: false,
        })
    }

    /// How the leader exited, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.leader.try_wait().expect("the process's status")
    }

    /// Kills the group at once and reaps the leader.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        let group = libc::pid_t::try_from(self.leader.id()).expect("a pid fits pid_t");
        // SAFETY: killpg(2) only sends a signal, to the group this child
        // leads (`process_group(0)` in `spawn`), which it still does: the
        // leader is not reaped yet, so its id is not reused.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        let _ = self.leader.wait();
        self.stopped = true;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running process, as its `/proc/<pid>/stat` line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub parent: u32,
    pub group: u32,
}

/// Every process running now; one that ends while they are read is left
/// out.
pub fn running() -> std::io::Result<Vec<Running>> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // gone meanwhile
        };
        if let Some((parent, group)) = parent_and_group(&stat) {
            processes.push(Running { pid, parent, group });
        }
    }
    Ok(processes)
}

/// "pid (comm) state ppid pgrp ...": the command name may hold spaces and
/// parentheses, so the fields are counted after its last ')'.
fn parent_and_group(stat: &str) -> Option<(u32, u32)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(1);
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((parent, group))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stat_line_gives_the_parent_and_the_group() {
        let stat = "4242 (tokio (x) y) S 17 4240 17 0 -1 4194560 ...";
        assert_eq!(super::parent_and_group(stat), Some((17, 4240)));
        assert_eq!(super::parent_and_group("4242 (cut"), None);
    }
}
