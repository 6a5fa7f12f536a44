//! A camera: writes frames into a stream, as fast as asked. Run `viewer` in another terminal.
//!
//! ```text
//! cargo run --example camera -- /cam 1000      # 512x512 f32 frames at 1 kHz
//! cargo run --example viewer -- /cam
//! ```
//!
//! Every element of frame n is n (as f32), so that a viewer can check that no frame is torn.

use std::time::{Duration, Instant};

use ipcmem::stream::StreamWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "/ipcmem-camera".to_owned());
    let rate: f64 = args.next().map_or(Ok(1000.0), |rate| rate.parse())?;
    let frames: Option<u64> = args.next().map(|count| count.parse()).transpose()?;
    let (width, height) = (512, 512);
    // Mode 0644: any user may watch (readers need only read permission).
    let mut camera = StreamWriter::<f32>::options().perms(0o644).create(name.as_str(), &[width, height], 4)?;
    println!("camera: streaming {width}x{height} f32 frames into {name} at {rate} Hz; Ctrl-C stops");
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut n = 0_u64;
    while frames.is_none_or(|frames| n < frames) {
        n += 1;
        // The frame is filled in place, in the slot the readers will copy it from.
        #[allow(clippy::cast_precision_loss)]
        let value = n as f32;
        let serial = camera.publish_with(|frame| frame.fill(value))?;
        if serial % 1000 == 0 {
            println!("camera: frame {serial}");
        }
        #[allow(clippy::cast_precision_loss)]
        let due = start + period.mul_f64(n as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}
