//! `demo`: the explainer's two worked examples, computed by the real roles.

use clap::Args;

use super::Exit;
use crate::demo::Lang;
use crate::paxos::{Rule, Rules};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which example: three-users (ballots 1, 2, 3 and "1+1=3") or late-joiner ("Zhengzhou")
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::demo::NAMES))]
    name: String,
    /// Switch one Paxos rule off and watch the story break: persist, promise or p2c
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Tell the story in English (en) or in the explainer's Chinese (zh)
    #[arg(long, default_value = "en", value_name = "LANG")]
    lang: Lang,
}

pub fn run(a: DemoArgs) -> Result<(), Exit> {
    if let Some(rule) = a.broken {
        if !matches!(rule, Rule::Persist | Rule::Promise | Rule::P2c) {
            let scenario = crate::sim::scenario::ALL.iter().find(|s| s.guard == rule);
            return Err(Exit::usage(format!(
                "the worked examples break the explainer's rules (persist, promise, p2c); `{rule}` is shown by {}",
                scenario.map_or("`synod sim --break`".to_string(), |s| format!(
                    "`synod sim --scenario {} --break {rule}`",
                    s.name
                ))
            )));
        }
    }
    let story = crate::demo::run(&a.name, Rules::breaking(a.broken), a.lang)
        .ok_or_else(|| Exit::usage(format!("no demo named `{}`", a.name)))?;
    print!("{}", story.text);
    if a.broken.is_none() {
        if let Some(hint) = crate::demo::hint(&a.name, a.lang) {
            println!("\n{hint}");
        }
    }
    Ok(())
}
