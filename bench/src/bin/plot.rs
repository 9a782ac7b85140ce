//! Tables (Markdown, to stdout) and SVG plots from the bench scripts' CSV
//! files.
//!
//! ```text
//! plot ab CSV OUT_DIR PREFIX      # bench/run-ab: msgs/s and p99 vs connections
//! plot counts CSV OUT_DIR         # bench/run-counts: instructions, syscalls per message
//! plot select CSV OUT_DIR         # bench/run-criterion: select() cost vs N per backend
//! plot http CSV OUT_DIR           # bench/run-http: CPU per request
//! plot https CSV OUT_DIR          # bench/run-https: keep-alive and full handshakes
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

type Rows = Vec<BTreeMap<String, String>>;

fn read_csv(path: &str) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row.get(col)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Series name -> points (x, y), in first-seen order of the series.
type Series = Vec<(String, Vec<(f64, f64)>)>;

fn push(series: &mut Series, name: &str, point: (f64, f64)) {
    match series.iter_mut().find(|(n, _)| n == name) {
        Some((_, points)) => points.push(point),
        None => series.push((name.to_string(), vec![point])),
    }
}

/// Tableau 10: distinct on white.
const COLORS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// An axis label: 1, 50, 1k, 10k, 2.5, 0.3.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.2}")
    }
}

/// A line chart with points, log-scaled x (and y if `log_y`).
fn chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &Series, log_y: bool) {
    let pts = || {
        series
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .filter(|p| p.1.is_finite())
    };
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x0 > x1 {
        eprintln!("{}: no data", path.display());
        return;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let x = (x0 * 0.8..x1 * 1.25).log_scale();
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .light_line_style(TRANSPARENT)
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&|x| short(*x))
                .y_label_formatter(&|y| short(*y))
                .draw()
                .unwrap();
            for (i, (name, points)) in series.iter().enumerate() {
                let (r, g, b) = COLORS[i % COLORS.len()];
                let color = RGBColor(r, g, b).to_rgba();
                let mut points = points.clone();
                points.retain(|p| p.1.is_finite());
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .unwrap()
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                c.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .unwrap();
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .unwrap();
        }};
    }
    if log_y {
        draw!(builder
            .build_cartesian_2d(x, (y0.max(1e-9) * 0.8..y1 * 1.25).log_scale())
            .unwrap());
    } else {
        draw!(builder.build_cartesian_2d(x, 0.0..y1 * 1.1).unwrap());
    }
    root.present().unwrap();
    println!(
        "![{title}]({})\n",
        path.file_name().unwrap().to_string_lossy()
    );
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.2}")
    }
}

/// bench/run-ab: one row per (round, server, connections).
fn ab(csv: &str, out: &Path, prefix: &str) {
    let rows = read_csv(csv);
    let mut groups: BTreeMap<(u64, String), Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for r in &rows {
        let label = r["label"].clone();
        if !order.contains(&label) {
            order.push(label.clone());
        }
        groups
            .entry((num(r, "conns") as u64, label))
            .or_default()
            .push(r);
    }
    println!("| server | connections | msgs/s median | (min – max) | p99 µs median | p99.9 µs median | server CPU µs/msg median | rounds |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let (mut rate, mut p99) = (Series::new(), Series::new());
    for label in &order {
        for ((conns, l), rs) in &groups {
            if l != label {
                continue;
            }
            let col = |c: &str| rs.iter().map(|r| num(r, c)).collect::<Vec<_>>();
            let mut msgs = col("msgs_per_s");
            let m = median(&mut msgs);
            let (lo, hi) = (msgs[0], msgs[msgs.len() - 1]);
            let p = median(&mut col("p99_us"));
            println!(
                "| {label} | {conns} | {} | ({} – {}) | {} | {} | {} | {} |",
                fmt(m),
                fmt(lo),
                fmt(hi),
                fmt(p),
                fmt(median(&mut col("p999_us"))),
                fmt(median(&mut col("server_cpu_us_per_msg"))),
                rs.len()
            );
            push(&mut rate, label, (*conns as f64, m));
            push(&mut p99, label, (*conns as f64, p));
        }
    }
    println!();
    let x = "connections";
    chart(
        &out.join(format!("{prefix}-msgs.svg")),
        &format!("{prefix}: messages/s (median)"),
        x,
        "msgs/s",
        &rate,
        false,
    );
    chart(
        &out.join(format!("{prefix}-p99.svg")),
        &format!("{prefix}: p99 latency (median)"),
        x,
        "p99 µs",
        &p99,
        true,
    );
}

/// bench/run-counts: instructions and syscalls per message, ratios to polling.
fn counts(csv: &str, out: &Path) {
    let rows = read_csv(csv);
    let mut conns: Vec<u64> = rows.iter().map(|r| num(r, "conns") as u64).collect();
    conns.sort_unstable();
    conns.dedup();
    let mut order: Vec<&str> = Vec::new();
    for r in &rows {
        if !order.contains(&r["server"].as_str()) {
            order.push(&r["server"]);
        }
    }
    let get = |s: &str, c: u64, col: &str| {
        rows.iter()
            .find(|r| r["server"] == s && num(r, "conns") as u64 == c)
            .map_or(f64::NAN, |r| num(r, col))
    };
    for (col, what) in [
        ("instr_per_msg", "user instructions per message"),
        ("syscalls_per_msg", "syscalls per message"),
    ] {
        print!("| server ({what}) |");
        for c in &conns {
            print!(" {c} conn | ratio |");
        }
        println!();
        println!("|---|{}", "---:|---:|".repeat(conns.len()));
        let mut series = Series::new();
        for s in &order {
            print!("| {s} |");
            for &c in &conns {
                let v = get(s, c, col);
                print!(" {} | {} |", fmt(v), fmt(v / get("polling", c, col)));
                push(&mut series, s, (c as f64, v));
            }
            println!();
        }
        println!();
        let name = if col == "instr_per_msg" {
            "counts-instr.svg"
        } else {
            "counts-syscalls.svg"
        };
        chart(
            &out.join(name),
            &format!("{what} (64-byte echo)"),
            "connections",
            what,
            &series,
            true,
        );
    }
}

/// bench/run-criterion: ns per select() with N idle + 1 ready, per backend.
fn select(csv: &str, out: &Path) {
    let rows = read_csv(csv);
    let mut series = Series::new();
    let mut ns: Vec<u64> = rows.iter().map(|r| num(r, "n") as u64).collect();
    ns.sort_unstable();
    ns.dedup();
    for r in &rows {
        push(
            &mut series,
            &r["backend"],
            (num(r, "n"), num(r, "ns") / 1000.0),
        );
    }
    print!("| backend |");
    for n in &ns {
        print!(" N = {n} |");
    }
    println!("\n|---|{}", "---:|".repeat(ns.len()));
    for (name, points) in &series {
        print!("| {name} |");
        for &n in &ns {
            let v = points
                .iter()
                .find(|p| p.0 as u64 == n)
                .map_or(f64::NAN, |p| p.1);
            print!(" {} |", fmt(v));
        }
        println!();
    }
    println!("\n(µs per select() call)\n");
    chart(
        &out.join("select.svg"),
        "select(): N idle + 1 ready, µs per call",
        "N idle sources",
        "µs",
        &series,
        true,
    );
}

/// bench/run-http: requests/s and server CPU per request under wrk.
fn http(csv: &str, out: &Path) {
    let rows = read_csv(csv);
    let mut groups: BTreeMap<(String, u64), Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &rows {
        groups
            .entry((r["server"].clone(), num(r, "conns") as u64))
            .or_default()
            .push(r);
    }
    println!("| server | connections | requests/s median | (min – max) | server CPU µs/request median | (min – max) | rounds |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut cpu = Series::new();
    for ((server, conns), rs) in &groups {
        let (_, u) = rate_cpu_row(server, *conns, rs);
        push(&mut cpu, server, (*conns as f64, u));
    }
    println!();
    chart(
        &out.join("http-cpu.svg"),
        "HTTP hello under wrk: server CPU µs per request (median)",
        "connections",
        "CPU µs / request",
        &cpu,
        false,
    );
}

/// bench/run-https: per mode (`keepalive`: requests on kept connections;
/// `handshake`: a new connection, so a full handshake, per request), the
/// rate and server CPU per request, then the ratio of the two servers.
fn https(csv: &str, out: &Path) {
    let rows = read_csv(csv);
    type Key = (String, String, u64);
    let mut groups: BTreeMap<Key, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &rows {
        let key = (
            r["mode"].clone(),
            r["server"].clone(),
            num(r, "conns") as u64,
        );
        groups.entry(key).or_default().push(r);
    }
    // (mode, server, conns) -> (median rate, median CPU µs per request).
    let mut medians: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    let mut cpu = Series::new();
    for (mode, what, title) in [
        (
            "keepalive",
            "requests",
            "Keep-alive: requests on connections kept open",
        ),
        (
            "handshake",
            "handshakes",
            "Full handshakes: `Connection: close`, a new connection and handshake per request",
        ),
    ] {
        println!("{title}:\n");
        println!(
            "| server | connections | {what}/s median | (min – max) | server CPU µs/{} median | (min – max) | rounds |",
            what.trim_end_matches('s')
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for ((m, server, conns), rs) in groups.iter().filter(|((m, ..), _)| m == mode) {
            let (r, u) = rate_cpu_row(server, *conns, rs);
            medians.insert((m.clone(), server.clone(), *conns), (r, u));
            push(&mut cpu, &format!("{server} {mode}"), (*conns as f64, u));
        }
        println!();
    }
    println!("https_hello / nginx, medians:\n");
    println!("| test | connections | rate | server CPU per request |");
    println!("|---|---:|---:|---:|");
    for ((mode, server, conns), (r, u)) in &medians {
        if server != "https_hello" {
            continue;
        }
        if let Some((nr, nu)) = medians.get(&(mode.clone(), "nginx".into(), *conns)) {
            println!("| {mode} | {conns} | {:.2} | {:.2} |", r / nr, u / nu);
        }
    }
    println!();
    chart(
        &out.join("https-cpu.svg"),
        "HTTPS hello under wrk: server CPU µs per request (median)",
        "connections",
        "CPU µs / request",
        &cpu,
        true,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: plot (ab CSV OUT_DIR PREFIX | counts CSV OUT_DIR | select CSV OUT_DIR | http CSV OUT_DIR | https CSV OUT_DIR)";
    let (Some(cmd), Some(csv), Some(out)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let out = Path::new(out);
    match cmd.as_str() {
        "ab" => ab(csv, out, args.get(3).map_or("ab", String::as_str)),
        "counts" => counts(csv, out),
        "select" => select(csv, out),
        "http" => http(csv, out),
        "https" => https(csv, out),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

/// Prints one table row of a server's rounds: rate and CPU per request,
/// median (min – max); returns the two medians.
fn rate_cpu_row(server: &str, conns: u64, rs: &[&BTreeMap<String, String>]) -> (f64, f64) {
    let col = |c: &str| rs.iter().map(|r| num(r, c)).collect::<Vec<_>>();
    let mut rate = col("req_per_s");
    let mut us = col("cpu_us_per_req");
    let (r, u) = (median(&mut rate), median(&mut us));
    println!(
        "| {server} | {conns} | {} | ({} – {}) | {} | ({} – {}) | {} |",
        fmt(r),
        fmt(rate[0]),
        fmt(rate[rate.len() - 1]),
        fmt(u),
        fmt(us[0]),
        fmt(us[us.len() - 1]),
        rs.len()
    );
    (r, u)
}
