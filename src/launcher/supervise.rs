//! A foreground `synod up`: watch the nodes until Ctrl-C, redrawing the status
//! table; and `synod logs --follow`, a `tail -f` of a node's output.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{status, table, LaunchError, Up};
use crate::cluster::rundir::StateError;
use crate::paxos::NodeId;

/// Supervise the nodes of `up` until SIGINT or SIGTERM (the caller has called
/// [`crate::signals::catch`]): on a terminal (`tty`), redraw the status table
/// every second with the last exits; otherwise print each exit as it happens.
/// Returns when told to stop; the caller stops the nodes.
pub fn supervise(up: Up, tty: bool, notes: &[String]) -> Result<(), StateError> {
    let dir = up.dir.clone();
    {
        let _lock = dir.lock()?;
        let mut state = dir.state();
        state.launcher = Some(std::process::id());
        dir.save(&state)?;
    }
    let (tx, rx) = crossbeam_channel::unbounded::<(NodeId, String)>();
    for (id, mut child) in up.children {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let how = match child.wait() {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = tx.send((id, how));
        });
    }
    let mut events: Vec<String> = Vec::new();
    let mut last = Instant::now();
    while !crate::signals::stopped() {
        while let Ok((id, how)) = rx.try_recv() {
            let line = format!("node {id} exited ({how})");
            if !tty {
                println!("{line}");
            }
            events.push(line);
        }
        if tty && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Ok((_, rows)) = status(&dir) {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\x1b[H\x1b[2J");
                let _ = writeln!(
                    out,
                    "synod: cluster {:?} (Ctrl-C stops every node)\n",
                    up.cluster.name
                );
                for n in notes {
                    let _ = writeln!(out, "{n}");
                }
                let _ = write!(out, "{}", table(&rows));
                for e in events.iter().rev().take(5) {
                    let _ = writeln!(out, "{e}");
                }
                let _ = out.flush();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Print the file at `path`; with `follow`, keep printing what is appended
/// (starting over if it shrinks) until SIGINT or SIGTERM.
pub fn print_log(path: &Path, follow: bool) -> Result<(), LaunchError> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| LaunchError::Failed(format!("cannot open {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| LaunchError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let _ = out.write_all(&buf);
    if !follow {
        return Ok(());
    }
    let _ = out.flush();
    let mut pos = buf.len() as u64;
    while !crate::signals::stopped() {
        std::thread::sleep(Duration::from_millis(200));
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(pos);
        if len < pos {
            pos = 0; // truncated or replaced
        }
        if len > pos {
            let _ = f.seek(SeekFrom::Start(pos));
            buf.clear();
            let _ = f.read_to_end(&mut buf);
            pos += buf.len() as u64;
            let _ = out.write_all(&buf);
            let _ = out.flush();
        }
    }
    Ok(())
}
