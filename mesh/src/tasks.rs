//! The tasks of one node — per connection, per stream, per request driver — owned in
//! one place, so stopping the node ends every one of them and lets go of every socket
//! they hold, as a process that exits would.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

/// A node's spawned tasks. Clones share the set.
#[derive(Debug, Clone, Default)]
pub struct NodeTasks {
    set: Arc<Mutex<JoinSet<()>>>,
}

impl NodeTasks {
    /// Spawns `task` as one of the node's; reaps the ones that finished.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.set.lock() {
            Ok(mut set) => {
                while set.try_join_next().is_some() {}
                set.spawn(task);
            }
            // A poisoned set still spawns; the task is then not tracked.
            Err(_) => drop(tokio::spawn(task)),
        }
    }

    /// How many are running.
    pub fn len(&self) -> usize {
        self.set.lock().map_or(0, |set| set.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every task and waits until they are gone.
    pub async fn stop(&self) {
        let mut set = match self.set.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(_) => return,
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
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
}
