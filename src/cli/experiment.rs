//! `experiment quorum`: the explainer's exercise, answered with measurements.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Exit;

#[derive(Debug, Subcommand)]
pub enum ExperimentCmd {
    /// Availability against cluster size under crashes and partitions: why 3, 5 or 7?
    Quorum(QuorumArgs),
    /// One cluster grown 3 -> 4 -> 5 and shrunk back through the log, nodes killed at each size: what a 4th node buys
    Grow(GrowArgs),
}

#[derive(Debug, Args)]
pub struct GrowArgs {
    /// How long each number of nodes down is held and measured
    #[arg(long, default_value = "1500ms", value_name = "D", value_parser = super::duration)]
    hold: std::time::Duration,
    /// Where results.json and report.md go
    #[arg(long, default_value = "experiment-grow", value_name = "DIR")]
    out: PathBuf,
    /// Each node a host of its own (`up --netns`, root)
    #[arg(long)]
    netns: bool,
}

fn grow(a: GrowArgs) -> Result<(), Exit> {
    let base = std::env::temp_dir().join(format!("synod-grow-{}", std::process::id()));
    let opts = crate::experiment::grow::GrowOptions {
        base: base.clone(),
        hold: a.hold,
        out: a.out.clone(),
        netns: a.netns,
    };
    crate::signals::catch();
    eprintln!(
        "growing a 3-node cluster to 5 and back, killing followers at each size (about a minute)"
    );
    let steps = crate::experiment::grow::run(&opts);
    let _ = std::fs::remove_dir_all(&base);
    let steps = steps?;
    print!("{}", crate::experiment::grow::table(&steps));
    println!("\n{}", crate::experiment::grow::answer(&steps));
    println!("\nwrote {}/{{results.json, report.md}}", a.out.display());
    Ok(())
}

#[derive(Debug, Args)]
pub struct QuorumArgs {
    /// Cluster sizes to compare: 3,4,5,6,7
    #[arg(long, default_value = "3,4,5,6,7", value_name = "LIST", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(1..=15))]
    sizes: Vec<u64>,
    /// Fraction of time each node is down in the crash model (strictly between 0 and 1)
    #[arg(long, default_value_t = 0.2, value_name = "P", value_parser = super::open_probability)]
    p: f64,
    /// Seed of every node timeline and split
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The short version (at most 90 s for five sizes)
    #[arg(long)]
    quick: bool,
    /// Where results.json, availability.svg and report.md go
    #[arg(long, default_value = "experiment-quorum", value_name = "DIR")]
    out: PathBuf,
    /// Run on the simulator instead, in virtual time (seconds of wall time)
    #[arg(long, conflicts_with = "with_sim")]
    sim: bool,
    /// Run on real processes and on the simulator, tables side by side
    #[arg(long)]
    with_sim: bool,
    /// Draw the report again (plots and report.md) from the results saved in
    /// DIR, running nothing
    #[arg(long, value_name = "DIR", conflicts_with_all = ["sim", "with_sim", "quick"])]
    redraw: Option<PathBuf>,
    /// Also run each even size with flexible quorums (N/2 + 1 to lead, N/2 to
    /// choose) on the same timelines and splits
    #[arg(long)]
    flexible: bool,
    /// Real runs with each node a host of its own (`up --netns`, root):
    /// splits are nftables rules
    #[arg(long)]
    netns: bool,
}

pub fn run(cmd: ExperimentCmd) -> Result<(), Exit> {
    let a = match cmd {
        ExperimentCmd::Quorum(a) => a,
        ExperimentCmd::Grow(a) => return grow(a),
    };
    if let Some(dir) = &a.redraw {
        let runs = crate::experiment::load(dir)?;
        crate::experiment::write_report(&runs, dir)?;
        println!(
            "redrew {}/{{availability.svg, cost.svg, report.md}}",
            dir.display()
        );
        return Ok(());
    }
    let mut sizes: Vec<usize> = a.sizes.iter().map(|&n| n as usize).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let opts = crate::experiment::Options {
        sizes,
        p: a.p,
        seed: a.seed,
        quick: a.quick,
        out: a.out.clone(),
        mode: if a.sim {
            crate::experiment::Backend::Sim
        } else if a.with_sim {
            crate::experiment::Backend::Both
        } else {
            crate::experiment::Backend::Real
        },
        progress: std::io::stderr().is_terminal(),
        flexible: a.flexible,
        netns: a.netns,
    };
    crate::signals::catch();
    let runs = crate::experiment::run(&opts)?;
    for r in &runs {
        println!(
            "\n{} ({:.0} s):\n",
            if r.mode == "sim" {
                "simulator, virtual time"
            } else {
                "real processes"
            },
            r.wall_s
        );
        print!("{}", crate::experiment::report::table(r));
    }
    if let Some(main) = runs.first() {
        println!("\n{}", crate::experiment::report::answer(main));
    }
    println!(
        "\nwrote {}/{{results.json, availability.svg, cost.svg, report.md}}",
        a.out.display()
    );
    Ok(())
}
