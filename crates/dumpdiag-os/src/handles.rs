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
        // The owner's CLIENT_ID {UniqueProcess, UniqueThread}: two HANDLEs, 8 bytes each as a
        // 64-bit writer stores them, 4 bytes each from a 32-bit one.
        MUTANT_INFO_2 => (|| {
            let (pid, tid) = if b.len() >= 16 {
                (u64_at(b, 0)?, u64_at(b, 8)?)
            } else {
                (u32_at(b, 0)? as u64, u32_at(b, 4)? as u64)
            };
            Some(ObjectState::MutantOwner {
                process_id: pid as u32,
                thread_id: tid as u32,
            })
        })(),
        SEMAPHORE_INFO_1 => (|| {
            Some(ObjectState::Semaphore {
                count: u32_at(b, 0)? as i32,
                limit: u32_at(b, 4)? as i32,
            })
        })(),
        // THREAD_BASIC_INFORMATION: ExitStatus, TebBaseAddress, ClientId {pid, tid},
        // AffinityMask, Priority, BasePriority: 48 bytes with 64-bit pointers (ExitStatus padded
        // to 8), 28 bytes with 32-bit ones.
        THREAD_INFO_1 => (|| {
            let (pid, tid) = if b.len() >= 48 {
                (u64_at(b, 16)?, u64_at(b, 24)?)
            } else {
                (u32_at(b, 8)? as u64, u32_at(b, 12)? as u64)
            };
            Some(ObjectState::Thread {
                exit_status: u32_at(b, 0)?,
                process_id: pid,
                thread_id: tid,
            })
        })(),
        // PROCESS_BASIC_INFORMATION: ExitStatus, PebBaseAddress, AffinityMask, BasePriority,
        // UniqueProcessId, InheritedFromUniqueProcessId: 48 bytes with 64-bit pointers, 24 with
        // 32-bit ones.
        PROCESS_INFO_1 => (|| {
            let pid = if b.len() >= 48 {
                u64_at(b, 32)?
            } else {
                u32_at(b, 16)? as u64
            };
            Some(ObjectState::Process {
                exit_status: u32_at(b, 0)?,
                process_id: pid,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_read_in_both_bitnesses() {
        let mut x64 = vec![0u8; 48];
        x64[0..4].copy_from_slice(&0x103u32.to_le_bytes());
        x64[16..24].copy_from_slice(&0x1234u64.to_le_bytes());
        x64[24..32].copy_from_slice(&0x5678u64.to_le_bytes());
        let mut x86 = vec![0u8; 28];
        x86[0..4].copy_from_slice(&0x103u32.to_le_bytes());
        x86[8..12].copy_from_slice(&0x1234u32.to_le_bytes());
        x86[12..16].copy_from_slice(&0x5678u32.to_le_bytes());
        for b in [x64, x86] {
            assert_eq!(
                decode(THREAD_INFO_1, &b),
                ObjectState::Thread {
                    exit_status: 0x103,
                    process_id: 0x1234,
                    thread_id: 0x5678
                }
            );
        }
        let mut owner64 = [0u8; 16];
        owner64[0..8].copy_from_slice(&0x20u64.to_le_bytes());
        owner64[8..16].copy_from_slice(&0xe4u64.to_le_bytes());
        let owner32 = [0x20u8, 0, 0, 0, 0xe4, 0, 0, 0];
        for b in [&owner64[..], &owner32[..]] {
            assert_eq!(
                decode(MUTANT_INFO_2, b),
                ObjectState::MutantOwner {
                    process_id: 0x20,
                    thread_id: 0xe4
                }
            );
        }
    }
}
