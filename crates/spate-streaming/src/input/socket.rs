//! `socket_text_stream`: lines read from a TCP server (Spark's `socketTextStream`).
//!
//! A receiver thread connects, reads lines into a buffer, and reconnects (after the batch
//! interval, at least 100 ms) when the connection fails or closes, reporting receiver events to
//! listeners. Each batch takes the lines buffered since the previous one. Like Spark's socket
//! receiver without a write-ahead log, buffered lines are lost on a crash.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::{Partitions, VecPartitions};
use crate::input::{InputContext, InputStream, RecordCount};
use crate::listener::{InputInfo, ReceiverInfo};
use crate::time::Time;

struct SocketInput {
    addr: String,
    partitions: usize,
    buffer: Arc<Mutex<Vec<String>>>,
    planned: Mutex<BTreeMap<Time, Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn receive(
    addr: String,
    buffer: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    ctx: InputContext,
) {
    let info = |active: bool, err: Option<String>| ReceiverInfo {
        input_id: ctx.input_id().to_owned(),
        name: format!("SocketReceiver({addr})"),
        active,
        location: "spate-socket-receiver".into(),
        last_error_time: err.as_ref().map(|_| Time::now()),
        last_error: err,
    };
    ctx.receiver_started(info(true, None));
    let backoff = ctx.batch_interval().max(Duration::from_millis(100));
    while !stop.load(Ordering::SeqCst) {
        match TcpStream::connect(&addr) {
            Ok(conn) => {
                // A read timeout lets the thread notice `stop` while the server is quiet.
                let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match reader.read_line(&mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            // A timeout can split a line; keep the partial text until its end.
                            if line.ends_with('\n') {
                                let l = line.trim_end_matches(['\n', '\r']).to_owned();
                                buffer.lock().push(l);
                                line.clear();
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => {
                            ctx.receiver_error(info(true, Some(e.to_string())));
                            break;
                        }
                    }
                }
                if !line.is_empty() {
                    buffer.lock().push(std::mem::take(&mut line));
                }
            }
            Err(e) => ctx.receiver_error(info(true, Some(format!("connect to {addr}: {e}")))),
        }
        if !stop.load(Ordering::SeqCst) {
            std::thread::sleep(backoff);
        }
    }
    ctx.receiver_stopped(info(false, None));
}

impl InputStream<String> for SocketInput {
    type Plan = RecordCount;
    type State = ();

    fn kind(&self) -> &str {
        "socket_text_stream"
    }

    fn start(&self, ctx: &InputContext) -> Result<()> {
        let (addr, buffer, stop, ctx) = (
            self.addr.clone(),
            self.buffer.clone(),
            self.stop.clone(),
            ctx.clone(),
        );
        let h = std::thread::Builder::new()
            .name("spate-socket-receiver".into())
            .spawn(move || receive(addr, buffer, stop, ctx))
            .map_err(|e| StreamingError::io("spate-socket-receiver thread", e))?;
        *self.thread.lock() = Some(h);
        Ok(())
    }

    fn stop(&self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
        Ok(())
    }

    fn plan(&self, time: Time) -> Result<RecordCount> {
        let lines = std::mem::take(&mut *self.buffer.lock());
        let records = lines.len() as u64;
        self.planned.lock().insert(time, lines);
        Ok(RecordCount { records })
    }

    fn info(&self, _time: Time, plan: &RecordCount) -> InputInfo {
        let n = plan.records;
        InputInfo {
            num_records: n,
            description: format!("{n} lines from {}", self.addr),
            ..InputInfo::default()
        }
    }

    fn compute(&self, time: Time, _plan: &RecordCount) -> Result<Arc<dyn Partitions<String>>> {
        match self.planned.lock().remove(&time) {
            Some(lines) => Ok(Arc::new(VecPartitions::split(lines, self.partitions))),
            None => Err(StreamingError::input(
                "socket_text_stream",
                format!("the lines of batch {time} are gone (socket streams cannot be recovered from a checkpoint)"),
            )),
        }
    }
}

impl StreamingContext {
    /// Lines of text read from `host:port` (Spark's `socketTextStream`).
    pub fn socket_text_stream(&self, host: &str, port: u16) -> DStream<String> {
        self.input_stream(SocketInput {
            addr: format!("{host}:{port}"),
            partitions: self.inner.conf.default_parallelism,
            buffer: Arc::new(Mutex::new(Vec::new())),
            planned: Mutex::new(BTreeMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        })
    }
}
