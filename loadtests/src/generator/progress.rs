//! The progress bar of a run: shown on a terminal (stderr), absent otherwise, so logs
//! and CI output stay clean.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A run's progress bar and the task that moves it.
#[derive(Debug)]
pub struct LoadProgress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl LoadProgress {
    /// Starts a bar labelled `label` that fills over `duration`; nothing when stderr
    /// is not a terminal.
    pub fn start(label: &str, duration: Duration) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let total = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("  {msg:40!} [{bar:30}] {elapsed:>4} / {duration}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        let moving = bar.clone();
        let ticker = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let done = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                moving.set_position(done.min(total));
                if done >= total {
                    break;
                }
            }
        });
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
