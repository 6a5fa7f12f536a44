//! The Python reader of `docs/stream-layout.md`, run for real: the code block of the document,
//! with `NumPy` from the virtual environment `.venv` at the repository's root (which `.ci/run`
//! makes), reads a stream that a writer fills with pattern frames.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{unique_name, Guard};
use ipcmem::stream::StreamWriter;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// The Python of `.venv`, which has `NumPy`.
fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: .ci/run makes it (python3 -m venv .venv && .venv/bin/pip install numpy pytest)",
        python.display()
    );
    python
}

/// The first Python code block of the layout document.
fn reader_code() -> String {
    let doc = std::fs::read_to_string(root().join("docs/stream-layout.md")).expect("docs/stream-layout.md");
    let start = doc.find("```python\n").expect("a python block") + "```python\n".len();
    let end = start + doc[start..].find("\n```").expect("the end of the block");
    doc[start..end].to_owned()
}

#[test]
fn the_documented_python_reader_gets_whole_frames_and_counts_losses() {
    let name = unique_name("python");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let script = std::env::temp_dir().join(format!("ipcmem-stream-reader-{}.py", std::process::id()));
    std::fs::write(&script, reader_code()).unwrap();
    let mut writer = StreamWriter::<f32>::create(name.as_str(), &[256, 256], 4).unwrap();
    let frames = 200;
    let reader = Command::new(python())
        .arg(&script)
        .args([name.as_str(), &frames.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    // Frames 200 µs apart, the reader polls: it copies many, misses some, and sometimes copies a
    // slot that the writer is overwriting, which its seqlock check must discard.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let output = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let serial = writer.last_serial() + 1;
                #[allow(clippy::cast_precision_loss)]
                let value = serial as f32;
                writer.publish_with(|frame| frame.fill(value)).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let output = reader.wait_with_output().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        output
    });
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Vec<f64>> = stdout
        .lines()
        .map(|line| line.split_whitespace().map(|field| field.parse().expect("a number")).collect())
        .collect();
    assert_eq!(lines.len(), frames);
    let (first, last) = (lines[0][0], lines[frames - 1][0]);
    let mut lost_total = 0.0;
    for (i, line) in lines.iter().enumerate() {
        let [serial, frame_lost, min, max] = line[..] else { panic!("{line:?}") };
        assert!((min - serial).abs() < 0.5 && (max - serial).abs() < 0.5, "a torn frame: {line:?}");
        if i > 0 {
            lost_total += frame_lost;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let returned = frames as f64;
    assert!(
        (returned + lost_total - (last - first + 1.0)).abs() < 0.5,
        "returned {returned} + lost {lost_total}, serials {first} to {last}"
    );
}
