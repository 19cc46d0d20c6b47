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
