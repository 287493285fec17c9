//! Thread dumps: every thread's current stack, its name, and what it waits for in
//! `mapprof::sync` (which lock, since when, held by whom), with lock cycles (deadlocks) found
//! and reported first. Go's goroutine profile, for threads: `/debug/pprof/goroutine` (also
//! `threads`) serves it as a profile (`?debug=1`: identical stacks grouped, `?debug=2`: every
//! thread in full), [`dump_threads`] returns the full text, and `dump_signal` writes it beside
//! the profiles it dumps.
//!
//! The stacks are taken by `mapprof_rt::threads` (a real-time signal to each thread, whose
//! handler walks the stack into fixed slots; threads that do not answer in time are listed as
//! such). Here they are symbolized by the profile builder, like every other profile, and
//! joined with the threads' names (`/proc/self/task/TID/comm`) and the locks' holders.

use crate::memory::profiler_work;
use crate::profiles::{self, unix_nanos};
use crate::Error;
use mapprof_profile::builder::{Header, LabelValue, RawSample};
use mapprof_profile::proto::Profile;
use mapprof_rt::contention::now_ns;
use mapprof_rt::threads::{self as rt, WaitKind, DEFAULT_ANSWER_TIMEOUT};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The frame shown for a thread that did not answer the dump's signal in time.
pub const NOT_ANSWERED_FRAME: &str = "mapprof::thread_did_not_answer";

/// One thread of a [`ThreadDump`].
#[derive(Clone, Debug)]
pub struct DumpedThread {
    /// Its id (`gettid`).
    pub tid: u32,
    /// Its name (`/proc/self/task/TID/comm`: at most 15 bytes, as the kernel keeps it).
    pub name: String,
    /// Whether it answered the dump's signal in time (else it has no stack: it blocks the
    /// signal, or was not scheduled within the timeout).
    pub answered: bool,
    /// What it waits for, if it sleeps in a `mapprof::sync` lock or condition variable.
    pub wait: Option<LockWait>,
    /// Its frames, innermost first: (function, file:line), inlined frames included.
    pub frames: Vec<(String, String)>,
}

/// A thread's wait for a lock.
#[derive(Clone, Debug)]
pub struct LockWait {
    /// `Mutex`, `RwLock (read)`, `RwLock (write)`, `Condvar`, or `tokio lock` (a
    /// `mapprof::tokio` lock's blocking call).
    pub kind: &'static str,
    /// The lock's address.
    pub lock: usize,
    /// How long it has waited.
    pub waited: Duration,
    /// The holder's tid: `None` when the lock does not name it (a `RwLock` held by readers, a
    /// condition variable, a tokio lock held by a task).
    pub holder: Option<u32>,
    /// The deadlock cycle this wait is part of (an index into [`ThreadDump::deadlocks`]).
    pub cycle: Option<usize>,
}

/// A dump of every thread ([`thread_dump`]).
#[derive(Debug)]
pub struct ThreadDump {
    threads: Vec<DumpedThread>,
    deadlocks: Vec<Vec<u32>>,
    not_listed: usize,
    dumper: u32,
    profile: Profile,
}

/// Takes a thread dump: signals every thread and waits for their stacks (at most
/// [`DEFAULT_ANSWER_TIMEOUT`] for each that does not answer), then symbolizes them.
pub fn thread_dump() -> Result<ThreadDump, Error> {
    thread_dump_within(DEFAULT_ANSWER_TIMEOUT)
}

/// [`thread_dump`], waiting at most `timeout` for threads to answer.
pub fn thread_dump_within(timeout: Duration) -> Result<ThreadDump, Error> {
    profiler_work(|| {
        let time = SystemTime::now();
        let dump = rt::dump(timeout).map_err(Error::ThreadDump)?;
        Ok(assemble(dump, time))
    })
}

/// The text of a full thread dump (`/debug/pprof/goroutine?debug=2`): deadlocks first, then
/// every thread, `thread TID [name]:` and what it waits for, then its frames. If no dump can
/// be taken, a line saying why.
pub fn dump_threads() -> String {
    match thread_dump() {
        Ok(dump) => dump.text(),
        Err(e) => format!("mapprof: {e}\n"),
    }
}

/// Writes [`dump_threads`]' text into `dir` as `threads.<pid>.<n>.txt`, `n` the first number
/// no file of this pid has there (for `dump_signal`). Written whole into a hidden temporary
/// file first and linked under its name, so a reader never sees half of it. Returns its path.
pub(crate) fn write_thread_dump_into(dir: &Path) -> Result<PathBuf, Error> {
    profiler_work(|| {
        let text = dump_threads();
        let pid = std::process::id();
        // Named as `profiles::temp_path` names its files, so a starting profiler removes one a
        // killed process left.
        let tmp = dir.join(format!(".threads.txt.{pid}.0.tmp"));
        let written = std::fs::File::create(&tmp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Write { path: tmp, source });
        }
        let mut n = 0u64;
        let linked = loop {
            let path = dir.join(format!("threads.{pid}.{n}.txt"));
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => break Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(source) => break Err(Error::Write { path, source }),
            }
        };
        let _ = std::fs::remove_file(&tmp);
        linked
    })
}

impl ThreadDump {
    /// The threads, by tid.
    pub fn threads(&self) -> &[DumpedThread] {
        &self.threads
    }

    /// Lock cycles: each the tids of threads that wait, in turn, for a lock the next holds.
    pub fn deadlocks(&self) -> &[Vec<u32>] {
        &self.deadlocks
    }

    /// The dump as a profile: one sample per thread (`threads/count`), its stack, and labels
    /// `thread` (name), `tid`, and for a waiter `waits_for`, `held_by`, `waiting` (ns) and,
    /// in a cycle, `deadlock`.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Consumes the dump, returning its profile.
    pub fn into_profile(self) -> Profile {
        self.profile
    }

    fn name_of(&self, tid: u32) -> String {
        match self.threads.iter().find(|t| t.tid == tid) {
            Some(t) => format!("thread {tid} [{}]", t.name),
            None => format!("thread {tid} (not in the dump: exited?)"),
        }
    }

    fn wait_line(&self, thread: &DumpedThread) -> String {
        let Some(w) = &thread.wait else {
            return String::new();
        };
        let mut line = format!(
            "waits for {} {:#x} for {:.3}s",
            w.kind,
            w.lock,
            w.waited.as_secs_f64()
        );
        if let Some(at) = lock_site(&thread.frames) {
            let _ = write!(line, " (locked at {} {})", at.0, at.1);
        }
        match (w.holder, w.kind) {
            (Some(h), _) => {
                let _ = write!(line, ", held by {}", self.name_of(h));
            }
            (None, "Condvar") => {}
            (None, "tokio lock") => line.push_str(", held by a task (not named)"),
            (None, _) => line.push_str(", held by readers"),
        }
        if let Some(c) = w.cycle {
            let _ = write!(line, " (DEADLOCK, cycle {})", c + 1);
        }
        line
    }

    fn header(&self, out: &mut String) {
        let unanswered = self.threads.iter().filter(|t| !t.answered).count();
        let _ = writeln!(
            out,
            "mapprof thread dump: {} threads, pid {}; did not answer: {unanswered}{}",
            self.threads.len(),
            std::process::id(),
            if self.not_listed > 0 {
                format!(
                    "; not dumped (past {}): {}",
                    rt::MAX_DUMP_THREADS,
                    self.not_listed
                )
            } else {
                String::new()
            }
        );
        for (i, cycle) in self.deadlocks.iter().enumerate() {
            let _ = writeln!(
                out,
                "DEADLOCK (cycle {}): {} threads wait for each other:",
                i + 1,
                cycle.len()
            );
            for tid in cycle {
                if let Some(t) = self.threads.iter().find(|t| t.tid == *tid) {
                    let _ = writeln!(out, "  {} {}", self.name_of(*tid), self.wait_line(t));
                }
            }
        }
        out.push('\n');
    }

    /// The full text (`?debug=2`): every thread, `thread TID [name]:` (and what it waits
    /// for), then its frames as `function\n\tfile:line`, innermost first, as Go's goroutine
    /// dump; deadlocks at the top.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        for t in &self.threads {
            let _ = write!(out, "thread {} [{}]:", t.tid, t.name);
            if !t.answered {
                out.push_str(" did not answer");
            } else if t.wait.is_some() {
                let _ = write!(out, " {}", self.wait_line(t));
            }
            if t.tid == self.dumper {
                out.push_str(" (taking this dump)");
            }
            out.push('\n');
            for (function, at) in &t.frames {
                let _ = writeln!(out, "{function}\n\t{at}");
            }
            out.push('\n');
        }
        out
    }

    /// The grouped text (`?debug=1`): identical stacks once, with their count and threads,
    /// as Go's `debug=1` (`N @ addresses`, then `#\taddress\tfunction\tfile:line`); deadlocks
    /// at the top.
    pub fn grouped_text(&self) -> String {
        let p = &self.profile;
        let s = |i: i64| p.string_table.get(i as usize).map_or("", String::as_str);
        let locations: HashMap<u64, _> = p.location.iter().map(|l| (l.id, l)).collect();
        let functions: HashMap<u64, _> = p.function.iter().map(|f| (f.id, f)).collect();
        let mut groups: BTreeMap<&[u64], Vec<u32>> = BTreeMap::new();
        for sample in &p.sample {
            let tid = sample
                .label
                .iter()
                .find(|l| s(l.key) == "tid")
                .map_or(0, |l| l.num as u32);
            groups.entry(&sample.location_id).or_default().push(tid);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        let mut out = String::new();
        self.header(&mut out);
        let _ = writeln!(out, "threads profile: total {}", self.threads.len());
        for (stack, mut tids) in groups {
            tids.sort_unstable();
            let addresses: Vec<String> = stack
                .iter()
                .map(|id| format!("{:#x}", locations.get(id).map_or(0, |l| l.address)))
                .collect();
            let _ = writeln!(out, "{} @ {}", tids.len(), addresses.join(" "));
            let names: Vec<String> = tids.iter().map(|&t| self.name_of(t)).collect();
            let _ = writeln!(out, "# {}", names.join(", "));
            for id in stack {
                let Some(location) = locations.get(id) else {
                    continue;
                };
                for line in &location.line {
                    let (name, file) = functions
                        .get(&line.function_id)
                        .map_or(("?", ""), |f| (s(f.name), s(f.filename)));
                    let _ = writeln!(
                        out,
                        "#\t{:#x}\t{name}\t{file}:{}",
                        location.address, line.line
                    );
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The frame that called into `mapprof::sync` (the lock's call site), innermost first.
fn lock_site(frames: &[(String, String)]) -> Option<&(String, String)> {
    let last_sync = frames
        .iter()
        .rposition(|(f, _)| f.starts_with("mapprof::sync::"))?;
    frames.get(last_sync + 1)
}

fn kind_name(kind: WaitKind) -> &'static str {
    match kind {
        WaitKind::Mutex => "Mutex",
        WaitKind::RwLockRead => "RwLock (read)",
        WaitKind::RwLockWrite => "RwLock (write)",
        WaitKind::Condvar => "Condvar",
        WaitKind::TokioLock => "tokio lock",
    }
}

/// A thread's name as the kernel keeps it, or `?`.
fn thread_name(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .map(|n| n.trim_end_matches('\n').to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Lock cycles in the wait-for graph (thread → the holder of the lock it waits for): each
/// thread waits for at most one lock, so each cycle is found by following one path; each is
/// reported once, from its lowest tid.
fn find_cycles(edges: &BTreeMap<u32, u32>) -> Vec<Vec<u32>> {
    let mut cycles = Vec::new();
    for &start in edges.keys() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(&next) = edges.get(&at) {
            if let Some(i) = path.iter().position(|&t| t == next) {
                let cycle = &path[i..];
                if cycle.iter().min() == Some(&start) {
                    cycles.push(cycle.to_vec());
                }
                break;
            }
            if path.len() > edges.len() {
                break;
            }
            path.push(next);
            at = next;
        }
    }
    cycles
}

fn assemble(dump: rt::Dump, time: SystemTime) -> ThreadDump {
    let now = now_ns();
    let listed: Vec<u32> = dump.threads.iter().map(|t| t.tid).collect();
    let edges: BTreeMap<u32, u32> = dump
        .threads
        .iter()
        .filter_map(|t| {
            let w = t.wait?;
            (w.holder != 0 && listed.contains(&w.holder)).then_some((t.tid, w.holder))
        })
        .collect();
    let deadlocks = find_cycles(&edges);
    let cycle_of = |tid: u32| deadlocks.iter().position(|c| c.contains(&tid));
    let mut threads: Vec<DumpedThread> = dump
        .threads
        .iter()
        .map(|t| DumpedThread {
            tid: t.tid,
            name: thread_name(t.tid),
            answered: t.answered,
            wait: t.wait.map(|w| LockWait {
                kind: kind_name(w.kind),
                lock: w.lock,
                waited: Duration::from_nanos(now.saturating_sub(w.since_ns)),
                holder: (w.holder != 0).then_some(w.holder),
                cycle: cycle_of(t.tid),
            }),
            frames: Vec::new(),
        })
        .collect();

    let mut header = Header {
        sample_types: vec![("threads".to_owned(), "count".to_owned())],
        period_type: ("threads".to_owned(), "count".to_owned()),
        period: 1,
        keep_profiler_frames: true,
        time_nanos: unix_nanos(time),
        ..Header::default()
    };
    let unanswered = threads.iter().filter(|t| !t.answered).count();
    header.comments = vec![
        "mapprof thread dump".to_owned(),
        format!(
            "threads: {}; did not answer within the timeout: {unanswered}; past {}: {}; \
             signal {}; deadlocks: {}",
            threads.len(),
            rt::MAX_DUMP_THREADS,
            dump.not_listed,
            dump.signal,
            deadlocks.len()
        ),
    ];
    let partial = ThreadDump {
        threads: threads.clone(),
        deadlocks: deadlocks.clone(),
        not_listed: dump.not_listed,
        dumper: dump.dumper,
        profile: Profile::default(),
    };
    let samples = dump
        .threads
        .iter()
        .zip(&threads)
        .map(|(raw, t)| {
            let mut labels = vec![
                ("thread".to_owned(), LabelValue::Str(t.name.clone())),
                ("tid".to_owned(), LabelValue::Num(i64::from(t.tid), None)),
            ];
            if !t.answered {
                labels.push(("state".to_owned(), LabelValue::Str("did not answer".into())));
            }
            if let Some(w) = &t.wait {
                labels.push((
                    "waits_for".to_owned(),
                    LabelValue::Str(format!("{} {:#x}", w.kind, w.lock)),
                ));
                let held_by = match w.holder {
                    Some(h) => partial.name_of(h),
                    None if w.kind == "Condvar" => String::new(),
                    None if w.kind == "tokio lock" => "a task".to_owned(),
                    None => "readers".to_owned(),
                };
                if !held_by.is_empty() {
                    labels.push(("held_by".to_owned(), LabelValue::Str(held_by)));
                }
                labels.push((
                    "waiting".to_owned(),
                    LabelValue::Num(
                        w.waited.as_nanos().min(i64::MAX as u128) as i64,
                        Some("nanoseconds".to_owned()),
                    ),
                ));
                if let Some(c) = w.cycle {
                    let members: Vec<String> = deadlocks[c]
                        .iter()
                        .map(|&tid| partial.name_of(tid))
                        .collect();
                    labels.push((
                        "deadlock".to_owned(),
                        LabelValue::Str(format!("cycle {}: {}", c + 1, members.join(" -> "))),
                    ));
                }
            }
            RawSample {
                stack: raw.stack.iter().map(|&a| a as u64).collect(),
                synthetic: (!t.answered).then(|| NOT_ANSWERED_FRAME.to_owned()),
                values: vec![1],
                labels,
            }
        })
        .collect();
    let profile = profiles::build(&header, samples);
    frames_by_tid(&profile, &mut threads);
    ThreadDump {
        threads,
        deadlocks,
        not_listed: dump.not_listed,
        dumper: dump.dumper,
        profile,
    }
}

/// Each thread's symbolized frames, read back from its sample in the built profile (found by
/// its `tid` label).
fn frames_by_tid(p: &Profile, threads: &mut [DumpedThread]) {
    let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
    let locations: HashMap<u64, _> = p.location.iter().map(|l| (l.id, l)).collect();
    let functions: HashMap<u64, _> = p.function.iter().map(|f| (f.id, f)).collect();
    for sample in &p.sample {
        let Some(tid) = sample
            .label
            .iter()
            .find(|l| s(l.key) == "tid")
            .map(|l| l.num as u32)
        else {
            continue;
        };
        let Some(thread) = threads.iter_mut().find(|t| t.tid == tid) else {
            continue;
        };
        for id in &sample.location_id {
            let Some(location) = locations.get(id) else {
                continue;
            };
            if location.line.is_empty() {
                thread
                    .frames
                    .push((format!("{:#x}", location.address), "?".to_owned()));
            }
            for line in &location.line {
                let (name, file) = functions
                    .get(&line.function_id)
                    .map_or((String::from("?"), String::new()), |f| {
                        (s(f.name), s(f.filename))
                    });
                let at = if file.is_empty() {
                    "?".to_owned()
                } else {
                    format!("{file}:{}", line.line)
                };
                thread.frames.push((name, at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_from_their_lowest_tid() {
        let edges: BTreeMap<u32, u32> = [(5, 7), (7, 5), (9, 5), (1, 2), (2, 3), (3, 1), (4, 8)]
            .into_iter()
            .collect();
        assert_eq!(find_cycles(&edges), vec![vec![1, 2, 3], vec![5, 7]]);
    }
}
