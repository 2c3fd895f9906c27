//! Live progress: bars on a terminal, plain periodic lines otherwise (CI logs).

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
    /// Starts showing `progress` on stderr: bars on a terminal; when not, or with `NO_COLOR`,
    /// `heading` (what is read from where) at once, then a line every `interval`; nothing
    /// when `quiet`.
    pub fn start(
        progress: Arc<Progress>,
        quiet: bool,
        interval: Duration,
        heading: String,
    ) -> Display {
        let (stop, stopped) = watch::channel(false);
        let task = if quiet {
            tokio::spawn(async {})
        } else if crate::out::styled_stderr() {
            tokio::spawn(bars(progress, stopped))
        } else {
            // At once, so that a CI log shows what is going on before the first interval ends
            // (a slow vendor's first page can take that long).
            eprintln!(
                "progress: {heading}; a line every {}",
                ferry_core::report::count(interval.as_secs(), "second", "seconds")
            );
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

/// An object's counters: (read, written, verified, failed, expected), each counting the records
/// settled by earlier runs (a resume) as read, written and verified, so that progress and ETA
/// start from the checkpoint's count rather than from zero.
fn counts(p: &ObjectProgress) -> (u64, u64, u64, u64, u64) {
    let earlier = p.already_done.load(Ordering::Relaxed);
    (
        earlier + p.read.load(Ordering::Relaxed),
        earlier + p.written.load(Ordering::Relaxed),
        earlier + p.verified.load(Ordering::Relaxed),
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
            let earlier = p.already_done.load(Ordering::Relaxed);
            if read > earlier && started.is_none() {
                *started = Some(Instant::now());
            }
            if expected > 0 && bar.length() == Some(0) {
                bar.set_style(known.clone());
            }
            bar.set_length(expected.max(read));
            bar.set_position(read);
            // This run's rate: the records of earlier runs took no time in this one.
            let rate = started
                .map(|t| (read - earlier) as f64 / t.elapsed().as_secs_f64().max(0.001))
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
            let (writing, reading_back) = in_flight(p);
            bar.set_message(format!(
                "written {written:>8}{writing}  verified {verified:>8}{reading_back}  failed {failed:>5}  {rate:>7.0} records/s{eta}"
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
        let elapsed = started.elapsed();
        // The object being read is the first one not done: it gets a line even before its
        // first page arrived, so a slow vendor does not look like a hung run.
        let mut current = true;
        for (object, p) in &progress.objects {
            if p.done.load(Ordering::Relaxed) {
                continue;
            }
            let line = line(object.as_str(), p, elapsed);
            if p.read.load(Ordering::Relaxed) > 0 || current {
                eprintln!("progress: {line}");
            }
            current = false;
        }
    }
}

/// One object's progress line, `elapsed` after the run started.
fn line(object: &str, p: &ObjectProgress, elapsed: Duration) -> String {
    let (read, written, verified, failed, expected) = counts(p);
    let earlier = p.already_done.load(Ordering::Relaxed);
    let this_run = read - earlier;
    if this_run == 0 {
        return format!(
            "{object}: waiting for the first page ({} so far)",
            indicatif::HumanDuration(elapsed)
        );
    }
    let rate = this_run as f64 / elapsed.as_secs_f64().max(0.001);
    let of = if expected > 0 {
        format!("/{expected}")
    } else {
        String::new()
    };
    let resumed = if earlier > 0 {
        format!(" ({earlier} from earlier runs)")
    } else {
        String::new()
    };
    let eta = if expected > read && rate > 0.0 {
        format!(
            ", ETA {}",
            indicatif::HumanDuration(Duration::from_secs_f64((expected - read) as f64 / rate))
        )
    } else {
        String::new()
    };
    let (writing, reading_back) = in_flight(p);
    format!(
        "{object}: read {read}{of}{resumed}, written {written}{writing}, verified \
         {verified}{reading_back}, failed {failed} ({rate:.0} records/s read{eta})"
    )
}

/// What the sink holds unanswered, as text to follow the written and verified counts (empty
/// when nothing is): a Bulk job keeps a whole batch for seconds before any of it counts.
fn in_flight(p: &ObjectProgress) -> (String, String) {
    let shown = |n: u64, what: &str| {
        if n == 0 {
            String::new()
        } else {
            format!(" (+{n} {what})")
        }
    };
    (
        shown(p.writing.load(Ordering::Relaxed), "in flight"),
        shown(p.reading_back.load(Ordering::Relaxed), "being read back"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_counts_from_the_checkpoint_and_its_eta_from_what_is_left() {
        let p = ObjectProgress::default();
        p.already_done.store(600, Ordering::Relaxed);
        p.expected.store(1000, Ordering::Relaxed);
        p.read.store(100, Ordering::Relaxed);
        p.written.store(100, Ordering::Relaxed);
        p.verified.store(90, Ordering::Relaxed);
        // 100 records in 10 s: 10 records/s; 300 left: 30 s (not the 90 s of 900 from zero).
        let text = line("contacts", &p, Duration::from_secs(10));
        assert!(
            text.starts_with(
                "contacts: read 700/1000 (600 from earlier runs), written 700, verified 690"
            ),
            "{text}"
        );
        assert!(text.contains("10 records/s read, ETA 30 seconds"), "{text}");
    }

    #[test]
    fn records_the_sink_has_not_answered_yet_are_shown_beside_the_counts() {
        let p = ObjectProgress::default();
        p.read.store(10_000, Ordering::Relaxed);
        p.writing.store(10_000, Ordering::Relaxed);
        let text = line("contacts", &p, Duration::from_secs(2));
        assert!(
            text.starts_with("contacts: read 10000, written 0 (+10000 in flight), verified 0,"),
            "{text}"
        );
        p.writing.store(0, Ordering::Relaxed);
        p.written.store(10_000, Ordering::Relaxed);
        p.reading_back.store(10_000, Ordering::Relaxed);
        let text = line("contacts", &p, Duration::from_secs(4));
        assert!(
            text.starts_with(
                "contacts: read 10000, written 10000, verified 0 (+10000 being read back),"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_object_waiting_for_its_first_page_says_so() {
        let p = ObjectProgress::default();
        let text = line("companies", &p, Duration::from_secs(12));
        assert_eq!(
            text,
            "companies: waiting for the first page (12 seconds so far)"
        );
    }
}
