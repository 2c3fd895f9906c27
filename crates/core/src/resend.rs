//! Sending again the records of a batch write that the vendor refused for a reason that passes
//! (a row lock, a deadlock, a server error inside one part of a batch), after a backoff, while
//! the outcomes of the rest of the batch stand. Sinks use it so that such a record is reported
//! as refused only once the rounds run out.

use std::future::Future;
use std::time::Duration;

use crate::error::ConnectorResult;
use crate::http::RetrySettings;

/// One record's answer in one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Final: written, or refused for a reason sending again cannot change.
    Done(T),
    /// Refused for a reason that passes; the value is the outcome to report if the rounds run
    /// out.
    Again(T),
}

/// How many rounds of sending again, and how long to wait before each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resend {
    /// Rounds of sending again after the first send.
    pub rounds: usize,
    /// The wait before the first round; it doubles each round.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

impl Resend {
    /// From a connector's retry settings: `max_retries` rounds, waits doubling from
    /// `min_backoff` up to `max_backoff`.
    pub fn from_retry(settings: &RetrySettings) -> Resend {
        Resend {
            rounds: settings.max_retries,
            first_wait: settings.min_backoff,
            max_wait: settings.max_backoff,
        }
    }

    /// The wait before round `round` (1: the first time a record is sent again).
    pub fn wait(&self, round: usize) -> Duration {
        let doublings = round.saturating_sub(1).min(16) as u32;
        self.first_wait
            .saturating_mul(1 << doublings)
            .min(self.max_wait)
    }
}

/// Sends `items` with `send` until every one has a final outcome. `send` gets the items of one
/// round and answers each, paired with its item, in any order. Items answered
/// [`Attempt::Again`] go in the next round after [`Resend::wait`]; after `resend.rounds`
/// rounds their last answer stands. A whole-request error of `send` ends it.
pub async fn settle<I, T, F, Fut>(
    vendor: &'static str,
    items: Vec<I>,
    resend: Resend,
    mut send: F,
) -> ConnectorResult<Vec<(I, T)>>
where
    F: FnMut(Vec<I>) -> Fut,
    Fut: Future<Output = ConnectorResult<Vec<(I, Attempt<T>)>>>,
{
    let mut settled = Vec::with_capacity(items.len());
    let mut pending = items;
    let mut round = 0;
    while !pending.is_empty() {
        let last_round = round >= resend.rounds;
        let mut again = Vec::new();
        for (item, attempt) in send(pending).await? {
            match attempt {
                Attempt::Done(outcome) => settled.push((item, outcome)),
                Attempt::Again(outcome) if last_round => settled.push((item, outcome)),
                Attempt::Again(_) => again.push(item),
            }
        }
        pending = again;
        if !pending.is_empty() {
            round += 1;
            tracing::debug!(
                vendor,
                records = pending.len(),
                round,
                "sending again records refused for a passing reason"
            );
            tokio::time::sleep(resend.wait(round)).await;
        }
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn quick(rounds: usize) -> Resend {
        Resend {
            rounds,
            first_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(2),
        }
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let r = Resend {
            rounds: 8,
            first_wait: Duration::from_millis(250),
            max_wait: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=4).map(|n| r.wait(n).as_millis()).collect();
        assert_eq!(waits, vec![250, 500, 1000, 1000]);
    }

    #[tokio::test]
    async fn only_the_passing_failures_are_sent_again_until_they_settle() {
        let sends = AtomicUsize::new(0);
        // Item n fails passingly for its first n rounds.
        let settled = settle("test", vec![0usize, 1, 2], quick(5), |items| {
            let round = sends.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok(items
                    .into_iter()
                    .map(|n| {
                        let attempt = if n > round {
                            Attempt::Again(Err(n))
                        } else {
                            Attempt::Done(Ok(n))
                        };
                        (n, attempt)
                    })
                    .collect())
            }
        })
        .await
        .unwrap();
        assert_eq!(sends.load(Ordering::Relaxed), 3);
        let mut outcomes: Vec<Result<usize, usize>> = settled.into_iter().map(|(_, o)| o).collect();
        outcomes.sort();
        assert_eq!(outcomes, vec![Ok(0), Ok(1), Ok(2)]);
    }

    #[tokio::test]
    async fn the_last_answer_stands_when_the_rounds_run_out() {
        let sends = AtomicUsize::new(0);
        let settled = settle("test", vec!["locked"], quick(2), |items| {
            sends.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok(items
                    .into_iter()
                    .map(|i| (i, Attempt::Again("refused")))
                    .collect())
            }
        })
        .await
        .unwrap();
        assert_eq!(
            sends.load(Ordering::Relaxed),
            3,
            "the first send and two rounds"
        );
        assert_eq!(settled, vec![("locked", "refused")]);
    }
}
