//! The console end to end, as a person uses it: the real `kiln` inside tmux (120×36) against
//! a real kilnd on a temp `KILN_HOME`. It launches a short training from the launch form,
//! watches the loss curve grow on the jobs screen, deploys the new version through the
//! confirm dialog, sends a test request, trains and deploys a second version, and rolls back
//! to the first, reading the screen (`tmux capture-pane -p`) at every step. Other tests
//! quantize a trained version from the optimize form, run a study and promote a trial, abort
//! a canary started from the CLI, start a canary from the deploy dialog after reading its
//! gates, register an epoch of a loss curve as a version, and watch a run with an absurd
//! learning rate marked exploding in the layers pane; drill from an evaluation's confusion
//! matrix into a cell and one of its samples, drawn in half-blocks.
//!
//! Every wait polls the screen against a deadline; a failure prints the last screen and the
//! tail of the daemon's log. Needs tmux (Debian package `tmux`; `scripts/setup` installs it).

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::tmux::{Terminal, env_line};

/// The terminal the console runs in.
const COLUMNS: u16 = 120;
const ROWS: u16 = 36;
/// What the shell prints, with kiln's exit status, once kiln has exited.
const EXITED: &str = "kiln exited with status";
/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(150);
/// Deadline for the console to react to a key or to a daemon event.
const REACT: Duration = Duration::from_secs(30);
/// Deadline for a short training job to finish (it takes seconds; this is the failure bound).
const TRAIN: Duration = Duration::from_secs(120);
/// The model the launch form names an mlp on Fashion-MNIST.
const MODEL: &str = "fmnist-mlp";
/// Fashion-MNIST's class names, as kilnd reports them.
const CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// A kilnd and a console in a private tmux server; both go away on drop, even on failure.
struct Console {
    terminal: Terminal,
    kilnd: Child,
    home: tempfile::TempDir,
    /// Kept for kiln's `KILN_CONFIG_DIR` while it runs.
    _config: tempfile::TempDir,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.terminal.close();
        let _ = self.kilnd.kill();
        let _ = self.kilnd.wait();
    }
}

/// Starts kilnd in the foreground on a free port and waits until it has written its address.
fn start_kilnd(home: &Path) -> Child {
    let log = File::create(home.join("kilnd.log")).expect("create kilnd.log");
    let child = common::command(common::kilnd_bin(), home)
        .args(["--foreground", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kilnd");
    let address = home.join("daemon/address");
    let deadline = Instant::now() + REACT;
    while !address.is_file() {
        assert!(Instant::now() < deadline, "kilnd never wrote {}", address.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Console {
    /// A fresh home and daemon, and `kiln` (no subcommand) open in a detached tmux session.
    fn open() -> Console {
        let home = tempfile::tempdir().expect("tempdir for KILN_HOME");
        let config = tempfile::tempdir().expect("tempdir for KILN_CONFIG_DIR");
        let kilnd = start_kilnd(home.path());
        let vars = [
            ("KILN_CONTROL_PORT", "0".into()),
            ("KILN_INFERENCE_BIND", "127.0.0.1:0".into()),
            ("KILN_HOME", home.path().to_path_buf()),
            ("KILN_CONFIG_DIR", config.path().to_path_buf()),
            ("KILN_KILND", common::kilnd_bin()),
        ];
        // The shell prints kiln's exit status: tmux's own #{pane_dead_status} is sometimes
        // never filled in.
        let mut line = env_line(vars, env!("CARGO_BIN_EXE_kiln"), &[]);
        line.push_str(&format!("; echo \"{EXITED} $?\""));
        let terminal = Terminal::open("kiln-e2e", home.path(), COLUMNS, ROWS, &line);
        Console {
            terminal,
            kilnd,
            home,
            _config: config,
        }
    }

    /// Presses keys by tmux name (`Enter`, `Left`, `BSpace`) or as single characters.
    fn press(&self, keys: &[&str]) {
        self.terminal.press(keys);
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.terminal.type_text(text);
    }

    /// Panics with the last screen and the daemon's log.
    fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(self.home.path().join("kilnd.log")).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!(
            "{why}\n──── last screen ────\n{}\n──── kilnd log (tail) ────\n{}",
            self.terminal.screen,
            tail.join("\n")
        );
    }

    /// Reads the screen until `found` returns something, or fails after `timeout`.
    fn wait_for<T>(&mut self, what: &str, timeout: Duration, found: impl FnMut(&str) -> Option<T>) -> T {
        match self.terminal.wait(what, timeout, POLL, found) {
            Ok(v) => v,
            Err(why) => self.fail(&why),
        }
    }

    /// Waits until every one of `texts` is on the screen; returns the screen.
    fn wait_for_text(&mut self, what: &str, texts: &[&str]) -> String {
        self.wait_for(what, REACT, |s| {
            texts.iter().all(|t| s.contains(t)).then(|| s.to_owned())
        })
    }

    /// Waits for kiln to exit and returns its exit status, as the shell printed it on the
    /// restored terminal (tmux's "Pane is dead" line may have scrolled it into history).
    fn exit_status(&mut self) -> i32 {
        let deadline = Instant::now() + REACT;
        loop {
            let screen = self.terminal.capture_with(&["-S", "-"]);
            let status = screen
                .lines()
                .find_map(|l| l.strip_prefix(EXITED))
                .and_then(|rest| rest.trim().parse().ok());
            if let Some(status) = status {
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "waited {REACT:?} for kiln to exit and the shell to print its status"
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Fails unless `ok`, showing the screen that was just read.
    fn check(&self, ok: bool, why: &str) {
        if !ok {
            self.fail(why);
        }
    }
}

/// A screen row without its panel borders, split into words.
fn words(line: &str) -> Vec<&str> {
    line.trim_matches(|c: char| c.is_whitespace() || "│┃".contains(c))
        .split_whitespace()
        .collect()
}

/// The jobs table's row for `job`: `(state, progress percent)`.
fn job_row(screen: &str, job: &str) -> Option<(String, u32)> {
    let line = screen.lines().find(|l| l.contains(job))?;
    let w = words(line);
    let at = w.iter().position(|x| x.ends_with(job))?;
    let state = (*w.get(at + 1)?).to_owned();
    let percent = w.iter().find_map(|x| x.strip_suffix('%')?.parse().ok())?;
    Some((state, percent))
}

/// Braille cells on the screen: the drawn part of the loss chart.
fn chart_cells(screen: &str) -> usize {
    screen.chars().filter(|c| ('\u{2801}'..='\u{28ff}').contains(c)).count()
}

/// The last step on the loss chart: the right-hand label under its x axis (`157`, `12k`).
fn chart_last_step(screen: &str) -> Option<f64> {
    let lines: Vec<&str> = screen.lines().collect();
    let axis = lines
        .iter()
        .position(|l| l.starts_with('│') && words(l).first().is_some_and(|w| w.starts_with('└')))?;
    let label = *words(lines.get(axis + 1)?).last()?;
    match label.strip_suffix('k') {
        Some(thousands) => thousands.parse::<f64>().ok().map(|k| k * 1e3),
        None => label.parse().ok(),
    }
}

/// The version the deployments table says MODEL serves (`v2`).
fn serving_version(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| match words(l).as_slice() {
        [model, version, ..] if *model == MODEL && version.starts_with('v') => Some((*version).to_owned()),
        _ => None,
    })
}

/// The models table's LATEST and PROD columns for MODEL (`v2`, `v1` or `-`).
fn latest_and_production(screen: &str) -> Option<(String, String)> {
    screen.lines().find_map(|l| match words(l).as_slice() {
        [model, _task, latest, production, ..] if *model == MODEL => {
            Some(((*latest).to_owned(), (*production).to_owned()))
        }
        _ => None,
    })
}

/// The id in the status line's `queued job <id> (…)`.
fn queued_job(screen: &str) -> Option<String> {
    let rest = screen.split("queued job ").nth(1)?;
    let id = rest.split_whitespace().next()?;
    Some(id.to_owned())
}

/// Fills the launch form for an mlp on Fashion-MNIST, `epochs` epochs over `limit` samples
/// (`all` leaves the form's default), and sends it; returns the job id the status line reports.
fn launch_training(console: &mut Console, epochs: &str, limit: &str) -> String {
    console.press(&["n"]);
    console.wait_for_text("the launch form", &["Launch training", "architecture", "sample limit"]);
    console.press(&["Left"]);
    console.wait_for_text("mlp chosen in the form", &["◀ mlp ▶", MODEL]);
    console.press(&["Down", "Down", "BSpace"]);
    console.type_text(epochs);
    let typed = format!("{epochs}▏");
    console.wait_for("the epochs typed", REACT, |s| {
        s.lines()
            .any(|l| l.contains("epochs") && l.contains(&typed))
            .then_some(())
    });
    console.press(&["Down", "BSpace", "BSpace", "BSpace"]);
    console.type_text(limit);
    let typed = format!("{limit}▏");
    let form = console.wait_for_text("the sample limit typed", &[&typed]);
    console.check(
        form.lines()
            .any(|l| l.contains("dataset") && l.contains("fashion-mnist")),
        "the form should train on fashion-mnist",
    );
    console.press(&["Enter"]);
    console.wait_for("the job queued (status line) on the jobs screen", REACT, |s| {
        s.contains("Jobs (").then(|| queued_job(s)).flatten()
    })
}

/// Opens the models screen and waits until `version` is MODEL's newest and selected, its
/// manifest loaded; returns `MODEL@version`.
fn show_newest(console: &mut Console, version: u32) -> String {
    console.press(&["1"]);
    let detail = format!("{MODEL}@{version}");
    let wanted = format!("v{version}");
    // The detail pane's title names the selected version once its manifest is loaded.
    let title = format!(" {detail} ");
    console.wait_for(
        &format!("{detail} newest and selected on the models screen"),
        REACT,
        |s| {
            let (latest, _) = latest_and_production(s)?;
            (latest == wanted && s.contains(&title)).then_some(())
        },
    );
    detail
}

/// Deploys the newest version of MODEL from the models screen; `question` is what the
/// confirm dialog must ask. Ends when the models table shows it in production.
/// Returns the screen that reported the deploy (its status line names the gates' outcomes).
fn deploy_newest(console: &mut Console, version: u32, question: &str) -> String {
    let detail = show_newest(console, version);
    let wanted = format!("v{version}");
    console.press(&["d"]);
    console.wait_for_text("the deploy confirm dialog", &["Confirm", question, "enter/y yes"]);
    console.press(&["Enter"]);
    let reported = console.wait_for_text(
        "the deploy reported in the status line",
        &[&format!("deployed {detail}")],
    );
    console.wait_for(&format!("{detail} in production (PROD column)"), REACT, |s| {
        (latest_and_production(s)?.1 == wanted).then_some(())
    });
    reported
}

/// Sends a test request from the serving screen and checks that `version` answered
/// sample `sample`, with the prediction right above the true label.
fn test_request(console: &mut Console, version: u32, sample: u32) {
    console.press(&["t"]);
    let heading = format!("{MODEL}@{version} · sample #{sample}");
    let screen = console.wait_for_text("the test request's answer", &[&heading, "predicted:", "true label:"]);
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.iter().position(|l| l.contains("predicted:")).unwrap_or_default();
    // In characters: the journal to the left holds multi-byte arrows and dashes.
    let column = |line: &str, key: &str| line.find(key).map(|i| line[..i].chars().count());
    let class_after = |line: &str, key: &str| {
        let text = line.split(key).nth(1).unwrap_or_default().trim_start();
        CLASSES.iter().find(|c| text.starts_with(*c)).map(|c| (*c).to_owned())
    };
    let predicted = class_after(lines[at], "predicted:");
    let truth_line = lines.get(at + 1).copied().unwrap_or_default();
    let truth = class_after(truth_line, "true label:");
    console.check(
        predicted.is_some() && truth.is_some(),
        "the prediction and the true label are Fashion-MNIST classes",
    );
    console.check(
        column(truth_line, "true label:") == column(lines[at], "predicted:"),
        "the true label sits right under the prediction",
    );
    let correct = predicted == truth;
    console.check(
        truth_line.contains(if correct { '✓' } else { '✗' }),
        "the true label is marked ✓ when the prediction matches it, ✗ otherwise",
    );
    eprintln!("test request {heading}: predicted {predicted:?}, true label {truth:?}");
}

#[test]
fn train_watch_deploy_query_and_roll_back_from_the_console() {
    let started = Instant::now();
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );

    // 1. A training from the launch form, long enough (3 epochs of the 55,000 training
    //    images: seconds even on a fast machine, with a metric line at least every second)
    //    that its running state cannot be skipped between two reads of the screen.
    let first = launch_training(&mut console, "3", "all");

    // 2. Its loss curve grows on the jobs screen until it succeeds.
    let (p1, step1) = console.wait_for("the first job running, with a loss curve", TRAIN, |s| {
        let (state, p) = job_row(s, &first)?;
        let drawn = chart_cells(s) > 0 && s.contains("── train");
        (state == "running" && p < 100 && drawn)
            .then(|| chart_last_step(s).map(|step| (p, step)))
            .flatten()
    });
    let (p2, step2) = console.wait_for("the progress and the curve to move on", TRAIN, |s| {
        let (_, p) = job_row(s, &first)?;
        let step = chart_last_step(s)?;
        (p > p1 && step > step1 && chart_cells(s) > 0).then_some((p, step))
    });
    eprintln!("jobs screen: {p1}% with the curve to step {step1}, then {p2}% to step {step2}");
    console.wait_for("the first job to succeed", TRAIN, |s| {
        (job_row(s, &first)? == ("succeeded".to_owned(), 100)).then_some(())
    });
    console.wait_for_text("the validation point on the chart", &["── val"]);

    // 3. Deploy the new version from the models screen, through the confirm dialog.
    deploy_newest(&mut console, 1, &format!("Deploy {MODEL}@1 to production?"));

    // 4. A test request from the serving screen: the prediction next to the true label.
    console.press(&["4"]);
    console.wait_for("v1 serving", REACT, |s| (serving_version(s)? == "v1").then_some(()));
    console.wait_for_text("the deploy in the journal", &[&format!("{MODEL} –→v1 deploy")]);
    test_request(&mut console, 1, 0);

    // 5. A second version deployed over the first, then rolled back to it. It is trained
    //    the same way, so it passes the deploy gates (no worse on the test split, no slower).
    console.press(&["2"]);
    console.wait_for_text("the jobs screen", &[&first, "Jobs (1)"]);
    let second = launch_training(&mut console, "3", "all");
    console.wait_for("the second job to succeed", TRAIN, |s| {
        (job_row(s, &second)? == ("succeeded".to_owned(), 100)).then_some(())
    });
    let reported = deploy_newest(&mut console, 2, &format!("Deploy {MODEL}@2, replacing {MODEL}@1"));
    console.check(
        reported.contains(&format!("deployed {MODEL}@2 · gates: golden passed, latency passed")),
        "the status line names the gates' outcomes",
    );
    console.press(&["4"]);
    console.wait_for("v2 serving", REACT, |s| (serving_version(s)? == "v2").then_some(()));
    console.wait_for_text("the second deploy in the journal", &[&format!("{MODEL} v1→v2 deploy")]);
    test_request(&mut console, 2, 1);
    console.press(&["r"]);
    console.wait_for_text(
        "the rollback confirm dialog",
        &["Confirm", &format!("Roll {MODEL} back from v2 to v1?")],
    );
    console.press(&["Enter"]);
    console.wait_for_text(
        "the rollback reported in the status line",
        &[&format!("rolled back {MODEL}@1")],
    );
    console.wait_for("v1 serving again", REACT, |s| {
        (serving_version(s)? == "v1").then_some(())
    });
    console.wait_for_text("the rollback in the journal", &[&format!("{MODEL} v2→v1 rollback")]);
    test_request(&mut console, 1, 2);

    // Quitting leaves kiln with status 0.
    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
    eprintln!("console end to end: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn launch_watch_and_promote_a_study_from_the_console() {
    let mut console = Console::open();
    console.wait_for_text("the console with a live event stream", &["● live", "5 Studies"]);
    let spec = console.home.path().join("study.toml");
    std::fs::write(&spec, common::asha_study("tui-study")).expect("write the spec");

    console.press(&["5"]);
    console.wait_for_text("the empty studies screen", &["no studies yet"]);
    console.press(&["n"]);
    console.wait_for_text("the new-study dialog", &["New study", "spec file"]);
    console.type_text(spec.to_str().expect("utf-8 temp path"));
    console.press(&["Enter"]);
    console.wait_for_text("the study running in the list", &["tui-study", "running"]);
    console.wait_for("trials running in the table", TRAIN, |s| {
        s.contains(" running ").then_some(())
    });
    let screen = console.wait_for("the study to complete", Duration::from_secs(240), |s| {
        s.contains("completed 6/6").then(|| s.to_owned())
    });
    console.check(screen.contains("pruned@e"), "no pruned trial shown in the trials table");

    // Promote the selected trial (the first, a good lr) through the confirm dialog.
    console.press(&["Enter"]);
    console.press(&["p"]);
    console.wait_for_text("the promote confirm dialog", &["Confirm"]);
    console.press(&["Enter"]);
    console.wait_for_text("the promotion reported", &["registered tui-study@1"]);
    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

/// Quantizes `parent` (MODEL@N, the selected version) to int8 from the optimize form,
/// measuring on `limit` samples; returns the job id the status line reports.
fn quantize_to_int8(console: &mut Console, parent: &str, limit: &str) -> String {
    console.press(&["o"]);
    console.wait_for_text(
        "the optimize form for the selected version",
        &["Optimize: prune or quantize", parent, "◀ prune ▶", "sparsity"],
    );
    console.press(&["Right"]);
    console.wait_for("quantize chosen, the pruning fields hidden", REACT, |s| {
        (s.contains("◀ quantize ▶") && s.contains("precision") && !s.contains("sparsity")).then_some(())
    });
    console.press(&["Down"]);
    console.wait_for_text("int8, the default precision, focused", &["◀ int8 ▶"]);
    console.press(&["Down", "BSpace", "BSpace", "BSpace"]);
    console.type_text(limit);
    let typed = format!("{limit}▏");
    console.wait_for("the sample limit typed", REACT, |s| {
        s.lines()
            .any(|l| l.contains("sample limit") && l.contains(&typed))
            .then_some(())
    });
    console.press(&["Enter"]);
    console.wait_for("the compress job queued (status line) on the jobs screen", REACT, |s| {
        s.contains("Jobs (").then(|| queued_job(s)).flatten()
    })
}

/// Whether the versions list shows `version` tagged `tags` (`2 int8 of v1`).
fn version_tagged(screen: &str, version: u32, tags: &str) -> bool {
    let number = version.to_string();
    let row: Vec<&str> = std::iter::once(number.as_str())
        .chain(tags.split_whitespace())
        .collect();
    screen.lines().any(|l| words(l).starts_with(&row))
}

/// The words after `label` on the detail row that starts with it (`size 1.2 MB …`).
fn report_row<'a>(screen: &'a str, label: &str) -> Option<Vec<&'a str>> {
    screen.lines().find_map(|l| match words(l).split_first() {
        Some((first, rest)) if *first == label => Some(rest.to_vec()),
        _ => None,
    })
}

#[test]
fn quantize_a_version_and_read_its_report_from_the_console() {
    let started = Instant::now();
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    let trained = launch_training(&mut console, "1", "3000");
    console.wait_for("the training to succeed", TRAIN, |s| {
        (job_row(s, &trained)? == ("succeeded".to_owned(), 100)).then_some(())
    });

    // The optimize form on v1, quantizing to int8 over a small sample (a quick job).
    let parent = show_newest(&mut console, 1);
    let job = quantize_to_int8(&mut console, &parent, "500");
    console.wait_for("the compress job to succeed", TRAIN, |s| {
        (job_row(s, &job)? == ("succeeded".to_owned(), 100)).then_some(())
    });

    // The child is v2, made from v1, and its detail carries the comparison with v1.
    show_newest(&mut console, 2);
    console.wait_for("v2 listed as int8 of v1", REACT, |s| {
        version_tagged(s, 2, "int8 of v1").then_some(())
    });
    console.press(&["Enter", "Enter"]);
    let lineage = format!("int8 of v1 · ← {parent}");
    let screen = console.wait_for_text(
        "the full-width detail of v2 with its report",
        &[&lineage, "v2 against v1", "smaller", "p50 ms b1", "500 rows"],
    );
    console.check(
        report_row(&screen, "method").is_some_and(|w| w == ["quantize", "int8"]),
        "the detail names the method: quantize int8",
    );
    console.check(
        report_row(&screen, "size").is_some_and(|w| w.last() == Some(&"smaller")),
        "the int8 child is smaller than its parent",
    );
    let scores = report_row(&screen, "accuracy").unwrap_or_default();
    let score = |i: usize| scores.get(i).and_then(|x| x.parse::<f64>().ok());
    console.check(
        [score(0), score(1)]
            .iter()
            .all(|a| a.is_some_and(|a| (0.0..=1.0).contains(&a))),
        "the report measures the accuracy of both v1 and v2",
    );

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
    eprintln!(
        "console compression end to end: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_signed_version_shows_its_signer_and_a_flipped_byte_shows_as_tampered() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    let trained = launch_training(&mut console, "1", "2000");
    console.wait_for("the training to succeed", TRAIN, |s| {
        (job_row(s, &trained)? == ("succeeded".to_owned(), 100)).then_some(())
    });
    let version = show_newest(&mut console, 1);
    console.wait_for_text("v1 listed as unsigned", &["SIGNATURE", "unsigned"]);

    // Signed from the CLI, another client of the same daemon: the console follows.
    let home = console.home.path().to_owned();
    for args in [&["keys", "gen", "--name", "ops"][..], &["models", "sign", &version]] {
        let out = common::kiln(&home, args);
        console.check(out.status.success(), &format!("kiln {args:?}: {out:?}"));
    }
    console.wait_for_text("v1 signed by ops in the list", &["✓ ops"]);
    console.press(&["Enter"]);
    console.wait_for_text(
        "the detail says who signed it",
        &["signed by ops", "every file matches"],
    );

    // One byte of the weights flipped on disk; a refresh (ctrl-r) shows it, naming the file.
    let shown = common::json(&common::kiln(&home, &["--json", "models", "show", &version]));
    let digest = shown["version"]["blobs"]["weights"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let hex = digest.trim_start_matches("sha256:");
    let blob = home.join("registry/blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&blob).unwrap_or_default();
    console.check(!bytes.is_empty(), "the weights blob is on disk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap_or_else(|e| console.fail(&format!("flip a byte: {e}")));
    console.press(&["C-r"]);
    console.wait_for_text("v1 shown as tampered", &["✗ tampered", "model.safetensors"]);

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

/// The canary panel's head line for MODEL (`canary fmnist-mlp v1→v2 10% · since …`).
fn canary_line(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| match words(l).as_slice() {
        ["canary", model, ..] if *model == MODEL => Some(l.to_owned()),
        _ => None,
    })
}

#[test]
fn a_canary_started_from_the_cli_is_shown_and_aborted_from_the_console() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    // Two versions trained the same way, the first deployed from the console.
    for version in [1, 2] {
        if version == 2 {
            console.press(&["2"]);
        }
        let job = launch_training(&mut console, "1", "2000");
        console.wait_for(&format!("training of v{version} to succeed"), TRAIN, |s| {
            (job_row(s, &job)? == ("succeeded".to_owned(), 100)).then_some(())
        });
        if version == 1 {
            deploy_newest(&mut console, 1, &format!("Deploy {MODEL}@1 to production?"));
        }
    }
    show_newest(&mut console, 2);

    // A canary of v2 started from the CLI, another client of the same daemon; the gates are
    // forced (they are tested elsewhere, and two tiny trainings may differ by a point).
    let home = console.home.path().to_owned();
    let candidate = format!("{MODEL}@2");
    let args = [
        "deploy",
        &candidate,
        "--canary",
        "10%",
        "--for",
        "10m",
        "--gate-samples",
        "200",
        "--force",
    ];
    let out = common::kiln(&home, &args);
    console.check(out.status.success(), &format!("kiln {args:?}: {out:?}"));

    // The serving screen shows it: the split, the way to promotion, both sides' figures.
    console.press(&["4"]);
    let line = console.wait_for("the canary on the serving screen", REACT, canary_line);
    console.check(
        line.contains("v1→v2") && line.contains("10%"),
        &format!("the canary line names the split: {line}"),
    );
    console.wait_for_text(
        "the canary's progress and both sides",
        &["to promotion", "stable", "candidate", "a abort", "p promote"],
    );
    console.wait_for("v1 still in force", REACT, |s| {
        (serving_version(s)? == "v1").then_some(())
    });

    // Aborted from the console, through the confirm dialog.
    console.press(&["a"]);
    console.wait_for_text(
        "the abort confirm dialog",
        &["Confirm", &format!("Abort the canary of {MODEL}?")],
    );
    console.press(&["Enter"]);
    console.wait_for_text(
        "the abort reported in the status line",
        &[&format!("canary ended, in force: {MODEL}@1")],
    );
    console.wait_for("the canary gone from the serving screen", REACT, |s| {
        canary_line(s).is_none().then_some(())
    });
    console.wait_for_text("the abort in the journal", &[&format!("{MODEL} v1→v2 abort")]);
    console.wait_for("v1 serving", REACT, |s| (serving_version(s)? == "v1").then_some(()));
    let left = common::json(&common::kiln(&home, &["--json", "canary", "status"]));
    console.check(
        left["canaries"].as_array().is_some_and(Vec::is_empty),
        &format!("kilnd has no canary left: {left}"),
    );

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

/// Trains v1 and v2 of MODEL the same way (one epoch over `limit` samples), deploying v1 from
/// the console; ends on the models screen with v2 the newest and selected.
fn two_versions_with_the_first_deployed(console: &mut Console, limit: &str) {
    for version in [1, 2] {
        if version == 2 {
            console.press(&["2"]);
        }
        let job = launch_training(console, "1", limit);
        console.wait_for(&format!("training of v{version} to succeed"), TRAIN, |s| {
            (job_row(s, &job)? == ("succeeded".to_owned(), 100)).then_some(())
        });
        if version == 1 {
            deploy_newest(console, 1, &format!("Deploy {MODEL}@1 to production?"));
        }
    }
    show_newest(console, 2);
}

#[test]
fn a_canary_chosen_in_the_deploy_dialog_after_reading_the_gates() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    two_versions_with_the_first_deployed(&mut console, "2000");

    // The dialog offers the three modes and asks kilnd for the gates as it opens.
    console.press(&["d"]);
    console.wait_for_text(
        "the deploy dialog with its three modes",
        &[
            "Confirm deploy",
            &format!("Deploy {MODEL}@2, replacing {MODEL}@1 in production?"),
            "› switch now",
            "canary 10%",
            "shadow",
        ],
    );
    // The gates' figures, both versions side by side, before the final confirm.
    console.wait_for_text(
        "the gate figures in the dialog",
        &["gates · ", "golden", "latency", "v2 candidate", "v1 in force", "p99 ms"],
    );
    console.press(&["Down"]);
    let screen = console.wait_for_text("canary 10% chosen", &["› canary 10%"]);
    // Two tiny trainings may differ by a point: a failed gate refuses enter, and the
    // explicit force key (journaled by kilnd) deploys past it.
    if screen.contains("a gate failed") {
        console.press(&["Enter"]);
        console.wait_for_text("enter refused after a failed gate", &["enter refused", "f force it"]);
        console.press(&["f"]);
    } else {
        console.press(&["Enter"]);
    }
    console.wait_for_text(
        "the canary start in the status line",
        &[&format!("canary of {MODEL}@2 started: 10% of requests")],
    );

    // The serving screen shows it: the split, the way to promotion, both sides; v1 in force.
    console.press(&["4"]);
    let line = console.wait_for("the canary on the serving screen", REACT, canary_line);
    console.check(
        line.contains("v1→v2") && line.contains("10%"),
        &format!("the canary line names the split: {line}"),
    );
    console.wait_for_text(
        "the canary's progress and both sides",
        &["to promotion", "stable", "candidate", "p promote", "a abort"],
    );
    console.wait_for("v1 still in force", REACT, |s| {
        (serving_version(s)? == "v1").then_some(())
    });
    console.wait_for_text("the canary in the journal", &[&format!("{MODEL} v1→v2 canary")]);
    let home = console.home.path().to_owned();
    let status = common::json(&common::kiln(&home, &["--json", "canary", "status"]));
    let canaries = status["canaries"].as_array().cloned().unwrap_or_default();
    console.check(
        canaries.len() == 1 && canaries[0]["percent"] == 10.0 && canaries[0]["candidate"] == 2,
        &format!("kilnd runs a 10% canary of v2: {status}"),
    );

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

#[test]
fn an_epoch_of_the_loss_curve_is_registered_from_the_jobs_screen() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    let job = launch_training(&mut console, "3", "3000");
    console.wait_for("the three-epoch training to succeed", TRAIN, |s| {
        (job_row(s, &job)? == ("succeeded".to_owned(), 100)).then_some(())
    });

    // Every epoch's checkpoint is kept: the chart marks the three validation points.
    console.wait_for_text(
        "the kept epochs marked on the chart",
        &["● kept", "3 kept checkpoints (●)", "move over the validation points"],
    );
    // The cursor starts on the last point and moves back to the first.
    console.press(&["["]);
    console.wait_for_text(
        "the cursor on epoch 3",
        &["epoch 3 · step", "promotable: R registers it"],
    );
    console.press(&["["]);
    console.wait_for_text("the cursor on epoch 2", &["epoch 2 · step"]);
    console.press(&["["]);
    let screen = console.wait_for_text(
        "the cursor on epoch 1, promotable",
        &[
            "epoch 1 · step",
            "val_loss",
            "val_accuracy",
            "promotable: R registers it",
        ],
    );
    console.check(screen.contains('◉'), "the point under the cursor is marked ◉");

    // R asks first; confirmed, kilnd registers epoch 1's checkpoint as v2.
    console.press(&["R"]);
    console.wait_for_text(
        "the register confirm dialog",
        &["Confirm", "Register epoch 1 (step", &job, "enter/y yes"],
    );
    console.press(&["Enter"]);
    console.wait_for_text(
        "the registration in the status line",
        &[&format!(
            "registered {MODEL}@2 from job {job} epoch 1 — deploy it from the models screen"
        )],
    );

    // The registry has it, with its lineage: this job, epoch 1.
    let home = console.home.path().to_owned();
    let shown = common::json(&common::kiln(
        &home,
        &["--json", "models", "show", &format!("{MODEL}@2")],
    ));
    let checkpoint = &shown["version"]["checkpoint"];
    console.check(
        checkpoint["job"] == job.as_str() && checkpoint["epoch"] == 1 && checkpoint["step"].as_u64().is_some(),
        &format!("{MODEL}@2 records its checkpoint (job {job}, epoch 1): {shown}"),
    );

    // The models screen selects it, so d would deploy it; its detail names the epoch.
    show_newest(&mut console, 2);
    console.press(&["Enter"]);
    console.wait_for_text("the lineage in v2's detail", &[&format!("job {job} epoch 1 (step")]);

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

#[test]
fn a_diverging_run_is_marked_exploding_in_the_layers_pane() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    // A run with an absurd learning rate, started from the CLI (another client of the daemon).
    let home = console.home.path().to_owned();
    let args = [
        "--json",
        "train",
        "mlp",
        "--data",
        "fashion-mnist",
        "--epochs",
        "1",
        "--limit",
        "2000",
        "--lr",
        "1e4",
        "--optimizer",
        "sgd",
        "--name",
        "boom",
        "--detach",
    ];
    let out = common::kiln(&home, &args);
    console.check(out.status.success(), &format!("kiln {args:?}: {out:?}"));
    let job = common::json(&out)["id"].as_str().unwrap_or_default().to_owned();
    console.check(job.starts_with('j'), &format!("a job id from {out:?}"));

    console.press(&["2"]);
    console.wait_for("the run to end as failed (diverged)", TRAIN, |s| {
        (job_row(s, &job)?.0 == "failed").then_some(())
    });
    // L swaps the loss chart for the layers pane: the first hidden layer is marked exploding.
    console.press(&["L"]);
    let screen = console.wait_for_text(
        "the exploding mark in the layers pane",
        &[
            &format!("layers · {job}"),
            "GRAD NORM OVER THE RUN",
            "hidden.0",
            "▲ exploding",
        ],
    );
    let warning = format!("⚠ job {job} layer ");
    console.check(
        screen
            .lines()
            .any(|l| l.contains(&warning) && l.contains("exploding gradients")),
        "the status line warns of the exploding layer",
    );
    console.press(&["L"]);
    console.wait_for_text("the loss chart back", &[&format!("loss · {job}")]);

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}

/// The off-diagonal cell of a confusion matrix with the most rows: `(true, predicted, rows)`.
fn most_confused(matrix: &serde_json::Value) -> Option<(usize, usize, u64)> {
    let rows = matrix.as_array()?;
    let mut best = None;
    for (t, row) in rows.iter().enumerate() {
        for (p, n) in row.as_array()?.iter().enumerate() {
            let n = n.as_u64()?;
            if t != p && n > 0 && best.is_none_or(|(_, _, m)| n > m) {
                best = Some((t, p, n));
            }
        }
    }
    best
}

#[test]
fn drill_from_an_eval_into_a_cell_and_see_a_sample_in_half_blocks() {
    let mut console = Console::open();
    console.wait_for_text(
        "the first-run welcome with a live event stream",
        &["Welcome to kiln", "● live", "1 Models"],
    );
    let job = launch_training(&mut console, "1", "2000");
    console.wait_for("the training to succeed", TRAIN, |s| {
        (job_row(s, &job)? == ("succeeded".to_owned(), 100)).then_some(())
    });

    // `kiln eval` from the CLI, another client of the same daemon: it keeps every row's
    // prediction, so its matrix can be drilled into. The busiest wrong cell is the target.
    let home = console.home.path().to_owned();
    let version = format!("{MODEL}@1");
    let args = ["--json", "eval", &version, "--data", "fashion-mnist", "--limit", "1000"];
    let report = common::json(&common::kiln(&home, &args));
    console.check(
        report["predictions"].is_string(),
        &format!("the report names its stored predictions: {report}"),
    );
    let Some((truth, predicted, rows)) = most_confused(&report["confusion_matrix"]) else {
        console.fail(&format!("no off-diagonal cell with samples in {report}"));
    };

    // The version's full-width detail, then its eval report with the cell cursor on it.
    show_newest(&mut console, 1);
    console.press(&["Enter", "Enter"]);
    let title = format!("┏ {version} ");
    console.wait_for("the full-width detail with the eval report", REACT, |s| {
        (s.lines().any(|l| l.starts_with(&title)) && s.contains("opens the matrix cell by cell")).then_some(())
    });
    console.press(&["Enter"]);
    console.wait_for_text("the eval report view", &["· eval fashion-mnist", "ECE", "t\\p"]);
    for _ in 0..truth {
        console.press(&["Down"]);
    }
    for _ in 0..predicted {
        console.press(&["Right"]);
    }
    let cell = format!("true {} → predicted {}", CLASSES[truth], CLASSES[predicted]);
    let count = if rows == 1 {
        "1 sample ·".to_owned()
    } else {
        format!("{rows} samples ·")
    };
    console.wait_for_text("the cursor on the cell", &[&format!("{cell}: {count}")]);

    // Enter lists the cell's samples, most confident first; enter again opens the first.
    console.press(&["Enter"]);
    console.wait_for_text("the cell's samples", &[&cell, "by confidence", "CONF", "LOSS"]);
    console.press(&["Enter"]);
    let screen = console.wait_for("the sample drawn in half-blocks beside its bars", REACT, |s| {
        let bar = s.lines().any(|l| l.contains('█') && l.contains('%'));
        (s.contains('▀') && bar && s.contains("half-blocks")).then(|| s.to_owned())
    });
    console.check(
        screen.contains(&format!("true {}", CLASSES[truth])),
        "the sample pane names the true class",
    );
    eprintln!("drill-down: {cell} ({rows} rows), its first sample drawn in half-blocks");

    console.press(&["q"]);
    let status = console.exit_status();
    console.check(status == 0, &format!("kiln exited with status {status}"));
}
