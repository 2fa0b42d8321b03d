//! Object-specific information attached to handles in a HandleData stream (descriptor v2):
//! the state of events, mutants, semaphores, threads and processes at dump time.

/// MINIDUMP_HANDLE_OBJECT_INFORMATION_TYPE values.
pub const THREAD_INFO_1: u32 = 1;
pub const MUTANT_INFO_1: u32 = 2;
pub const MUTANT_INFO_2: u32 = 3;
pub const PROCESS_INFO_1: u32 = 4;
pub const PROCESS_INFO_2: u32 = 5;
pub const EVENT_INFO_1: u32 = 6;
pub const SECTION_INFO_1: u32 = 7;
pub const SEMAPHORE_INFO_1: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    Event {
        manual_reset: bool,
        signaled: bool,
    },
    Mutant {
        count: i32,
        owned_by_caller: bool,
        abandoned: bool,
    },
    MutantOwner {
        process_id: u32,
        thread_id: u32,
    },
    Semaphore {
        count: i32,
        limit: i32,
    },
    Thread {
        exit_status: u32,
        process_id: u64,
        thread_id: u64,
    },
    Process {
        exit_status: u32,
        process_id: u64,
    },
    Other {
        info_type: u32,
        bytes: Vec<u8>,
    },
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Decode one object-information entry; unknown or short entries come back as `Other`.
pub fn decode(info_type: u32, b: &[u8]) -> ObjectState {
    let other = || ObjectState::Other {
        info_type,
        bytes: b.to_vec(),
    };
    let decoded = match info_type {
        EVENT_INFO_1 => (|| {
            Some(ObjectState::Event {
                manual_reset: u32_at(b, 0)? == 0,
                signaled: u32_at(b, 4)? != 0,
            })
        })(),
        MUTANT_INFO_1 => (|| {
            Some(ObjectState::Mutant {
                count: u32_at(b, 0)? as i32,
                owned_by_caller: b.get(4).copied()? != 0,
                abandoned: b.get(5).copied()? != 0,
            })
        })(),
        MUTANT_INFO_2 => (|| {
            Some(ObjectState::MutantOwner {
                process_id: u32_at(b, 0)?,
                thread_id: u32_at(b, 4)?,
            })
        })(),
        SEMAPHORE_INFO_1 => (|| {
            Some(ObjectState::Semaphore {
                count: u32_at(b, 0)? as i32,
                limit: u32_at(b, 4)? as i32,
            })
        })(),
        // THREAD_BASIC_INFORMATION: ExitStatus, (pad), TebBaseAddress, ClientId{pid, tid}, ...
        THREAD_INFO_1 => (|| {
            Some(ObjectState::Thread {
                exit_status: u32_at(b, 0)?,
                process_id: u64_at(b, 16)?,
                thread_id: u64_at(b, 24)?,
            })
        })(),
        // PROCESS_BASIC_INFORMATION: ExitStatus, PebBaseAddress, AffinityMask, BasePriority, UniqueProcessId, ...
        PROCESS_INFO_1 => (|| {
            Some(ObjectState::Process {
                exit_status: u32_at(b, 0)?,
                process_id: u64_at(b, 32)?,
            })
        })(),
        _ => None,
    };
    decoded.unwrap_or_else(other)
}

/// The lines WinDbg's `!handle h f` prints under "Object Specific Information".
pub fn describe(state: &ObjectState) -> Vec<String> {
    match state {
        ObjectState::Event {
            manual_reset,
            signaled,
        } => vec![
            format!(
                "Event Type {}",
                if *manual_reset {
                    "Manual Reset"
                } else {
                    "Auto Reset"
                }
            ),
            format!("Event is {}", if *signaled { "Set" } else { "Waiting" }),
        ],
        ObjectState::Mutant {
            count,
            owned_by_caller,
            abandoned,
        } => {
            let mut v = vec![format!(
                "Mutex is {}",
                if *count > 0 { "Free" } else { "Owned" }
            )];
            if *owned_by_caller {
                v.push("Mutex is owned by a thread of this process".into());
            }
            if *abandoned {
                v.push("Mutex is abandoned".into());
            }
            v
        }
        ObjectState::MutantOwner {
            process_id,
            thread_id,
        } => vec![format!("Mutant Owner {process_id:x}.{thread_id:x}")],
        ObjectState::Semaphore { count, limit } => vec![
            format!("Semaphore Count {count}"),
            format!("Semaphore Limit {limit}"),
        ],
        ObjectState::Thread {
            exit_status,
            process_id,
            thread_id,
        } => {
            vec![
                format!("Thread Id   {process_id:x}.{thread_id:x}"),
                format!("Exit Status {exit_status:#x}"),
            ]
        }
        ObjectState::Process {
            exit_status,
            process_id,
        } => vec![
            format!("Process Id  {process_id}"),
            format!("Exit Status {exit_status:#x}"),
        ],
        ObjectState::Other { info_type, bytes } => {
            vec![format!(
                "info type {info_type}: {}",
                bytes
                    .iter()
                    .take(32)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )]
        }
    }
}
