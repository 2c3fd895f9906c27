//! Live progress: bars on a terminal, plain periodic lines otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_core::Progress;
use ferry_core::report::ObjectProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running progress display; `finish` stops it.
pub struct Display {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Display {
    /// Starts showing `progress` on stderr: bars on a terminal, a line every `interval` when
    /// not, nothing when `quiet`.
    pub fn start(progress: Arc<Progress>, quiet: bool, interval: Duration) -> Display {
        let (stop, stopped) = watch::channel(false);
        let task = if quiet {
            tokio::spawn(async {})
        } else if std::io::stderr().is_terminal() {
            tokio::spawn(bars(progress, stopped))
        } else {
            tokio::spawn(lines(progress, stopped, interval))
        };
        Display { stop, task }
    }

    /// Stops the display, drawing the final state once.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn counts(p: &ObjectProgress) -> (u64, u64, u64, u64, u64) {
    (
        p.read.load(Ordering::Relaxed),
        p.written.load(Ordering::Relaxed),
        p.verified.load(Ordering::Relaxed),
        p.failed.load(Ordering::Relaxed),
        p.expected.load(Ordering::Relaxed),
    )
}

async fn bars(progress: Arc<Progress>, mut stopped: watch::Receiver<bool>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    // With a total from the source: a bar and an ETA. Without one: a spinner and counts.
    let known = ProgressStyle::with_template(
        "{prefix:>10} {bar:28.cyan/blue} {pos:>8}/{len:<8} read  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("█▉▊▋▌▍▎▏ ");
    let unknown = ProgressStyle::with_template("{prefix:>10} {spinner} {pos:>8} read  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bars: Vec<(ProgressBar, Option<Instant>)> = progress
        .objects
        .iter()
        .map(|(object, _)| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(unknown.clone());
            bar.set_prefix(object.as_str());
            (bar, None)
        })
        .collect();
    let mut bars = bars;
    loop {
        for ((_, p), (bar, started)) in progress.objects.iter().zip(bars.iter_mut()) {
            let (read, written, verified, failed, expected) = counts(p);
            if read > 0 && started.is_none() {
                *started = Some(Instant::now());
            }
            if expected > 0 && bar.length() == Some(0) {
                bar.set_style(known.clone());
            }
            bar.set_length(expected.max(read));
            bar.set_position(read);
            let rate = started
                .map(|t| read as f64 / t.elapsed().as_secs_f64().max(0.001))
                .unwrap_or(0.0);
            // Our own rate and ETA, from when this object started reading: indicatif's would
            // count the time the bar waited for earlier objects.
            let eta = if expected > read && rate > 0.0 {
                format!(
                    "  ETA {}",
                    indicatif::HumanDuration(Duration::from_secs_f64(
                        (expected - read) as f64 / rate
                    ))
                )
            } else {
                String::new()
            };
            bar.set_message(format!(
                "written {written:>8}  verified {verified:>8}  failed {failed:>5}  {rate:>7.0} records/s{eta}"
            ));
            if p.done.load(Ordering::Relaxed) && !bar.is_finished() {
                bar.finish();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopped.changed() => break,
        }
    }
    for (bar, _) in &bars {
        if !bar.is_finished() {
            bar.abandon();
        }
    }
}

async fn lines(progress: Arc<Progress>, mut stopped: watch::Receiver<bool>, interval: Duration) {
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        for (object, p) in &progress.objects {
            let (read, written, verified, failed, expected) = counts(p);
            if read == 0 || p.done.load(Ordering::Relaxed) {
                continue;
            }
            let of = if expected > 0 {
                format!("/{expected}")
            } else {
                String::new()
            };
            eprintln!(
                "progress: {object}: read {read}{of}, written {written}, verified {verified}, failed {failed} \
                 ({:.0} records/s read)",
                read as f64 / elapsed
            );
        }
    }
}
