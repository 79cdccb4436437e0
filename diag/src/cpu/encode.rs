//! A [`CpuProfile`] in pprof's protobuf format (`profile.proto`), gzip'd as Go's
//! `/debug/pprof/profile` serves it.

use std::collections::HashMap;
use std::io::Write as _;

use pprof::protos::{self, Message as _};

use super::{CpuError, CpuProfile, Frame};

/// The content type Go's pprof handler answers with.
pub const PPROF_CONTENT_TYPE: &str = "application/octet-stream";

/// Interns strings for the profile's string table (index 0 is the empty string, by the format).
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

pub(super) fn to_pprof(profile: &CpuProfile) -> protos::Profile {
    let mut strings = Strings::new();
    let mut functions: Vec<protos::Function> = Vec::new();
    let mut function_ids: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut locations: Vec<protos::Location> = Vec::new();
    let mut location_ids: HashMap<Frame, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(profile.stacks.len());
    let period_ns = 1_000_000_000 / i64::from(profile.hz.max(1));
    let thread_key = strings.get("thread");
    for stack in &profile.stacks {
        // pprof lists a sample's locations leaf first.
        let location_id: Vec<u64> = stack
            .frames
            .iter()
            .rev()
            .map(|frame| {
                if let Some(&id) = location_ids.get(frame) {
                    return id;
                }
                let function_key = (frame.function.clone(), frame.file.clone());
                let function_id = match function_ids.get(&function_key) {
                    Some(&id) => id,
                    None => {
                        let id = functions.len() as u64 + 1;
                        let name = strings.get(&frame.function);
                        functions.push(protos::Function {
                            id,
                            name,
                            system_name: name,
                            filename: strings.get(frame.file.as_deref().unwrap_or("")),
                            start_line: 0,
                        });
                        function_ids.insert(function_key, id);
                        id
                    }
                };
                let id = locations.len() as u64 + 1;
                locations.push(protos::Location {
                    id,
                    mapping_id: 0,
                    address: 0,
                    line: vec![protos::Line {
                        function_id,
                        line: i64::from(frame.line.unwrap_or(0)),
                    }],
                    is_folded: false,
                });
                location_ids.insert(frame.clone(), id);
                id
            })
            .collect();
        let count = stack.samples as i64;
        samples.push(protos::Sample {
            location_id,
            value: vec![count, count * period_ns],
            label: vec![protos::Label {
                key: thread_key,
                str: strings.get(&stack.thread),
                num: 0,
                num_unit: 0,
            }],
        });
    }
    let samples_type = protos::ValueType {
        ty: strings.get("samples"),
        unit: strings.get("count"),
    };
    let cpu_type = protos::ValueType {
        ty: strings.get("cpu"),
        unit: strings.get("nanoseconds"),
    };
    protos::Profile {
        sample_type: vec![samples_type, cpu_type.clone()],
        sample: samples,
        mapping: Vec::new(),
        location: locations,
        function: functions,
        string_table: strings.table,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: profile
            .start_time
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64,
        duration_nanos: profile.duration.as_nanos() as i64,
        period_type: Some(cpu_type),
        period: period_ns,
        comment: Vec::new(),
        default_sample_type: 0,
    }
}

pub(super) fn pprof_gzip(profile: &CpuProfile) -> Result<Vec<u8>, CpuError> {
    let bytes = to_pprof(profile).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::cpu::Stack;

    #[test]
    fn round_trips_through_gzip_and_protobuf() {
        let frame = |function: &str, line| Frame {
            function: function.into(),
            file: Some("src/main.rs".into()),
            line: Some(line),
        };
        let profile = CpuProfile {
            stacks: vec![
                Stack {
                    thread: "main".into(),
                    frames: vec![frame("app::main", 3), frame("app::spin", 10)],
                    samples: 7,
                },
                Stack {
                    thread: "main".into(),
                    frames: vec![frame("app::main", 3), frame("app::spin", 11)],
                    samples: 2,
                },
            ],
            hz: 100,
            duration: Duration::from_secs(2),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        };
        let gz = profile.pprof_gzip().unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let decoded = protos::Profile::decode(&raw[..]).unwrap();
        assert_eq!(decoded, profile.to_pprof());
        let s = |i: i64| decoded.string_table[i as usize].as_str();
        assert_eq!(decoded.period, 10_000_000);
        assert_eq!(decoded.duration_nanos, 2_000_000_000);
        assert_eq!(decoded.sample.len(), 2);
        assert_eq!(decoded.sample[0].value, vec![7, 70_000_000]);
        // Leaf first: app::spin at line 10, then app::main.
        let leaf = &decoded.location[decoded.sample[0].location_id[0] as usize - 1];
        let function = &decoded.function[leaf.line[0].function_id as usize - 1];
        assert_eq!(s(function.name), "app::spin");
        assert_eq!(s(function.filename), "src/main.rs");
        assert_eq!(leaf.line[0].line, 10);
        // The two lines of app::spin are two locations of one function.
        assert_eq!(decoded.location.len(), 3);
        assert_eq!(decoded.function.len(), 2);
    }
}
