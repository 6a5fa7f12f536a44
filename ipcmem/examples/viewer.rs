//! A viewer: follows the stream of `camera` (see there), checks every frame, and prints once a
//! second what it received, lost, and how late.
//!
//! ```text
//! cargo run --example viewer -- /cam
//! ```

use std::time::{Duration, Instant};

use ipcmem::stream::StreamReader;
use ipcmem::Error;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "/ipcmem-camera".to_owned());
    // Waits for the camera if it has not started yet.
    let mut viewer = StreamReader::<f32>::open_wait(name.as_str(), Duration::from_secs(60))?;
    let dims = viewer.geometry().frame_dims().to_vec();
    println!("viewer: reading {dims:?} f32 frames from {name}");
    let mut frame = vec![0.0_f32; viewer.frame_len()];
    let (mut received, mut lost, mut worst) = (0_u64, 0_u64, Duration::ZERO);
    let mut since = Instant::now();
    loop {
        let info = match viewer.next_into(&mut frame, Duration::from_secs(5)) {
            Ok(Some(info)) => info,
            Ok(None) => {
                println!("viewer: no frame for 5 s");
                continue;
            }
            Err(Error::WriterGone { pid, reason, .. }) => {
                println!("viewer: the camera (pid {pid}) is gone: {reason}; waiting for a new one");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        #[allow(clippy::cast_precision_loss)]
        let expected = info.serial as f32;
        if info.restarted {
            println!("viewer: the camera restarted the stream");
        }
        assert!(frame.iter().all(|&value| value.to_bits() == expected.to_bits()), "frame {} is torn", info.serial);
        received += 1;
        lost += info.lost;
        worst = worst.max(info.published().elapsed().unwrap_or_default());
        if since.elapsed() >= Duration::from_secs(1) {
            println!("viewer: frame {}, {received} received, {lost} lost, worst latency {worst:?}", info.serial);
            (received, lost, worst, since) = (0, 0, Duration::ZERO, Instant::now());
        }
    }
}
