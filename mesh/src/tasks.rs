//! The tasks of one node — per connection, per stream, per request driver — owned in
//! one place, so stopping the node ends every one of them and lets go of every socket
//! they hold, as a process that exits would.
//!
//! It spawns and stops tasks; it knows nothing of what they do.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

/// A node's spawned tasks. Clones share the set.
#[derive(Debug, Clone, Default)]
pub struct NodeTasks {
    set: Arc<Mutex<Set>>,
}

#[derive(Debug, Default)]
struct Set {
    tasks: JoinSet<()>,
    /// Set by `stop`: what is spawned afterwards is dropped, not run.
    closed: bool,
}

impl NodeTasks {
    /// Spawns `task` as one of the node's; reaps the ones that finished. Returns a
    /// handle that aborts it, or `None` when the node stopped and nothing was started.
    pub fn spawn<F>(&self, task: F) -> Option<tokio::task::AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(mut set) = self.set.lock() else {
            // Poisoned: a task panicked while spawning; nothing more is started.
            return None;
        };
        if set.closed {
            return None;
        }
        while let Some(done) = set.tasks.try_join_next() {
            if let Err(error) = done
                && error.is_panic()
            {
                tracing::error!(%error, "a task of the node panicked");
            }
        }
        Some(set.tasks.spawn(task))
    }

    /// How many are running.
    pub fn len(&self) -> usize {
        self.set.lock().map_or(0, |set| set.tasks.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every task and waits until they are gone; nothing spawned afterwards
    /// runs.
    pub async fn stop(&self) {
        let mut tasks = match self.set.lock() {
            Ok(mut set) => {
                set.closed = true;
                std::mem::take(&mut set.tasks)
            }
            Err(_) => return,
        };
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Aborts every task without waiting (for `Drop`); nothing spawned afterwards runs.
    pub fn abort(&self) {
        if let Ok(mut set) = self.set.lock() {
            set.closed = true;
            set.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stop_ends_every_task_and_finished_ones_are_reaped() {
        let tasks = NodeTasks::default();
        for _ in 0..3 {
            tasks.spawn(async {});
        }
        tokio::task::yield_now().await;
        let (held, mut dropped) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _held = held;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert_eq!(tasks.len(), 1, "the three finished ones were reaped");
        tasks.stop().await;
        assert!(tasks.is_empty());
        assert!(
            matches!(
                dropped.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ),
            "the task's state was dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_spawned_while_stopping_outlives_the_stop() {
        for round in 0..100 {
            let tasks = NodeTasks::default();
            let inner = tasks.clone();
            tasks.spawn(async move {
                loop {
                    inner.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
                    tokio::task::yield_now().await;
                }
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
            tasks.stop().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            assert_eq!(tasks.len(), 0, "round {round}");
        }
    }
}
