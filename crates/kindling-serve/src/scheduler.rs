//! The one thread that runs the model: requests wait in a queue, join the
//! batch when a slot is free, and leave it when they end, time out, or
//! their client goes away. Each step decodes one token of every request in
//! the batch together ([`BatchGenerator`]).

use crate::ServedModel;
use kindling_models::batch::{BatchGenerator, SeqId, Update};
use kindling_models::generate::{GenerateOptions, Generation};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// One request for the model.
pub(crate) struct Job {
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    pub deadline: Instant,
    pub tx: UnboundedSender<Chunk>,
}

/// What the model thread sends back for a request.
#[derive(Debug)]
pub(crate) enum Chunk {
    Text(String),
    Done(Generation),
    Failed(String),
    TimedOut,
}

/// Counters the handlers and `/health` read.
#[derive(Default)]
pub(crate) struct Load {
    /// Requests sent to the model thread and not yet in the batch.
    pub queued: AtomicUsize,
    /// Requests in the batch.
    pub active: AtomicUsize,
    /// Requests finished (any way).
    pub finished: AtomicUsize,
}

struct Live {
    tx: UnboundedSender<Chunk>,
    deadline: Instant,
}

/// Sends an update's text (and its end) to the request's client. False when
/// the client is gone or the request ended; it is then counted finished.
fn deliver(live: &Live, u: Update, load: &Load) -> bool {
    if !u.text.is_empty() && live.tx.send(Chunk::Text(u.text)).is_err() {
        load.finished.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    match u.done {
        Some(g) => {
            // Counted before the last chunk goes out: a client that has read
            // its whole answer finds it in /health's counts (the channel
            // orders the count before the client's read).
            load.finished.fetch_add(1, Ordering::Relaxed);
            let _ = live.tx.send(Chunk::Done(g));
            false
        }
        None => true,
    }
}

pub(crate) fn run(model: Arc<ServedModel>, rx: Receiver<Job>, max_batch: usize, load: Arc<Load>) {
    let decode = |ids: &[u32]| model.tokenizer.decode(ids).unwrap_or_default();
    let mut batch = BatchGenerator::new(model.model.as_ref());
    let mut live: HashMap<SeqId, Live> = HashMap::new();
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let end = |load: &Load, n: usize| {
        load.finished.fetch_add(n, Ordering::Relaxed);
    };
    loop {
        if batch.is_empty() && waiting.is_empty() {
            match rx.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return, // the server is shutting down
            }
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        // New requests join before the next step.
        while batch.len() < max_batch {
            let Some(job) = waiting.pop_front() else {
                break;
            };
            load.queued.fetch_sub(1, Ordering::Relaxed);
            if job.tx.is_closed() {
                end(&load, 1);
                continue;
            }
            if Instant::now() > job.deadline {
                let _ = job.tx.send(Chunk::TimedOut);
                end(&load, 1);
                continue;
            }
            match batch.add(&job.prompt, job.options, &decode) {
                Err(e) => {
                    let _ = job.tx.send(Chunk::Failed(e.to_string()));
                    end(&load, 1);
                }
                Ok((id, update)) => {
                    let l = Live {
                        tx: job.tx,
                        deadline: job.deadline,
                    };
                    if deliver(&l, update, &load) {
                        live.insert(id, l);
                    } else {
                        batch.cancel(id);
                    }
                }
            }
        }
        load.active.store(batch.len(), Ordering::Relaxed);
        match batch.step(&decode) {
            Ok(updates) => {
                // Finished sequences have left the batch: said before their
                // answers end.
                load.active.store(batch.len(), Ordering::Relaxed);
                for u in updates {
                    let id = u.id;
                    let going_on = match live.get(&id) {
                        Some(l) => deliver(l, u, &load),
                        None => {
                            end(&load, 1);
                            false
                        }
                    };
                    if !going_on {
                        batch.cancel(id);
                        live.remove(&id);
                    }
                }
            }
            Err(e) => {
                // A model error ends every request in the batch, not the server.
                for (id, l) in live.drain() {
                    let _ = l.tx.send(Chunk::Failed(e.to_string()));
                    batch.cancel(id);
                    end(&load, 1);
                }
            }
        }
        // Clients that went away, and requests past their deadline, free
        // their slots now rather than when their answer would end.
        let now = Instant::now();
        live.retain(|id, l| {
            let gone = l.tx.is_closed();
            let late = now > l.deadline;
            if late && !gone {
                let _ = l.tx.send(Chunk::TimedOut);
            }
            if gone || late {
                batch.cancel(*id);
                end(&load, 1);
            }
            !(gone || late)
        });
        load.active.store(batch.len(), Ordering::Relaxed);
    }
}
