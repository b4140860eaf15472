//! `web`: the live page of the cluster running in this directory.

use std::net::SocketAddr;

use clap::Args;

use super::{find, ClusterArg, Exit};

#[derive(Debug, Args)]
pub struct WebArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Where to serve the page (loopback unless you ask; actions need the
    /// token printed with the URL)
    #[arg(long, default_value = "127.0.0.1:7180", value_name = "ADDR")]
    addr: SocketAddr,
    /// Instead of a running cluster, scrub the timeline of a finished
    /// `synod chaos --out DIR` run (read-only)
    #[arg(long, value_name = "DIR", conflicts_with = "cluster")]
    replay: Option<std::path::PathBuf>,
}

pub fn run(a: WebArgs) -> Result<(), Exit> {
    if let Some(dir) = &a.replay {
        let r = crate::web::replay::Replay::load(dir)?;
        if !a.addr.ip().is_loopback() {
            eprintln!(
                "warning: serving on {}: anyone who reaches it sees the run",
                a.addr
            );
        }
        println!(
            "synod web: http://{}/ (replay of {})",
            a.addr,
            dir.display()
        );
        crate::web::serve_replay(r, a.addr)?;
        return Ok(());
    }
    let dir = find(&a.c)?;
    let o = crate::web::WebOptions::new(dir, a.addr);
    if let Some(w) = o.exposed() {
        eprintln!("{w}");
    }
    println!("synod web: {}", o.url());
    crate::web::serve(o)?;
    Ok(())
}
