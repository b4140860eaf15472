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
}

pub fn run(a: WebArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let o = crate::web::WebOptions::new(dir, a.addr);
    if let Some(w) = o.exposed() {
        eprintln!("{w}");
    }
    println!("synod web: {}", o.url());
    crate::web::serve(o)?;
    Ok(())
}
