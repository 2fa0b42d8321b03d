//! Handles of the HandleData stream (MINIDUMP_HANDLE_DESCRIPTOR_2) and the object-specific
//! information a descriptor chains to (MINIDUMP_HANDLE_OBJECT_INFORMATION entries, by
//! MINIDUMP_HANDLE_OBJECT_INFORMATION_TYPE). The information bodies are the NT query structures
//! dbghelp copies, laid out as `dumpdiag-os`'s `handles` module decodes them.

use crate::bytes::{put_u32, put_u64};

/// MINIDUMP_HANDLE_OBJECT_INFORMATION_TYPE values.
pub const MINI_THREAD_INFORMATION_1: u32 = 1;
pub const MINI_MUTANT_INFORMATION_1: u32 = 2;
pub const MINI_MUTANT_INFORMATION_2: u32 = 3;
pub const MINI_PROCESS_INFORMATION_1: u32 = 4;
pub const MINI_EVENT_INFORMATION_1: u32 = 6;
pub const MINI_SEMAPHORE_INFORMATION_1: u32 = 8;

/// One object-information entry of a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectInfo {
    /// THREAD_BASIC_INFORMATION: ExitStatus (0x103 STILL_ACTIVE while running) at 0,
    /// TebBaseAddress at 8, ClientId (UniqueProcess, UniqueThread) at 16, AffinityMask at 32,
    /// Priority at 40, BasePriority at 44.
    Thread {
        exit_status: u32,
        teb: u64,
        process_id: u64,
        thread_id: u64,
    },
    /// PROCESS_BASIC_INFORMATION: ExitStatus at 0, PebBaseAddress at 8, AffinityMask at 16,
    /// BasePriority at 24, UniqueProcessId at 32, InheritedFromUniqueProcessId at 40.
    Process {
        exit_status: u32,
        peb: u64,
        process_id: u64,
    },
    /// EVENT_BASIC_INFORMATION: EventType (0 NotificationEvent = manual reset,
    /// 1 SynchronizationEvent = auto reset), EventState (non-zero when signaled).
    Event { manual_reset: bool, signaled: bool },
    /// MUTANT_BASIC_INFORMATION: CurrentCount (1 free, <= 0 owned), OwnedByCaller,
    /// AbandonedState.
    Mutant {
        count: i32,
        owned_by_caller: bool,
        abandoned: bool,
    },
    /// The owner of a mutant (MiniMutantInformation2): process id and thread id, 32 bits each.
    MutantOwner { process_id: u32, thread_id: u32 },
    /// SEMAPHORE_BASIC_INFORMATION: CurrentCount, MaximumCount.
    Semaphore { count: i32, limit: i32 },
    /// Any other entry, as raw bytes.
    Raw { info_type: u32, bytes: Vec<u8> },
}

impl ObjectInfo {
    /// (InfoType, information bytes) as the stream stores them.
    pub fn encode(&self) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        let kind = match self {
            ObjectInfo::Thread {
                exit_status,
                teb,
                process_id,
                thread_id,
            } => {
                put_u32(&mut b, 0, *exit_status);
                put_u64(&mut b, 8, *teb);
                put_u64(&mut b, 16, *process_id);
                put_u64(&mut b, 24, *thread_id);
                put_u64(&mut b, 32, 1); // AffinityMask
                put_u32(&mut b, 40, 8); // Priority
                put_u32(&mut b, 44, 8); // BasePriority
                MINI_THREAD_INFORMATION_1
            }
            ObjectInfo::Process {
                exit_status,
                peb,
                process_id,
            } => {
                put_u32(&mut b, 0, *exit_status);
                put_u64(&mut b, 8, *peb);
                put_u64(&mut b, 16, 1); // AffinityMask
                put_u32(&mut b, 24, 8); // BasePriority
                put_u64(&mut b, 32, *process_id);
                put_u64(&mut b, 40, 0); // InheritedFromUniqueProcessId
                MINI_PROCESS_INFORMATION_1
            }
            ObjectInfo::Event {
                manual_reset,
                signaled,
            } => {
                put_u32(&mut b, 0, !*manual_reset as u32);
                put_u32(&mut b, 4, *signaled as u32);
                MINI_EVENT_INFORMATION_1
            }
            ObjectInfo::Mutant {
                count,
                owned_by_caller,
                abandoned,
            } => {
                put_u32(&mut b, 0, *count as u32);
                b.push(*owned_by_caller as u8);
                b.push(*abandoned as u8);
                b.extend_from_slice(&[0, 0]);
                MINI_MUTANT_INFORMATION_1
            }
            ObjectInfo::MutantOwner {
                process_id,
                thread_id,
            } => {
                put_u32(&mut b, 0, *process_id);
                put_u32(&mut b, 4, *thread_id);
                MINI_MUTANT_INFORMATION_2
            }
            ObjectInfo::Semaphore { count, limit } => {
                put_u32(&mut b, 0, *count as u32);
                put_u32(&mut b, 4, *limit as u32);
                MINI_SEMAPHORE_INFORMATION_1
            }
            ObjectInfo::Raw { info_type, bytes } => {
                b.extend_from_slice(bytes);
                *info_type
            }
        };
        (kind, b)
    }
}

impl ObjectInfo {
    /// THREAD_BASIC_INFORMATION as a 32-bit dump writer stores it (an x86 dump of an x86
    /// process): 28 bytes of 32-bit fields — ExitStatus at 0, TebBaseAddress at 4, ClientId
    /// (UniqueProcess, UniqueThread) at 8 and 12, AffinityMask at 16, Priority at 20,
    /// BasePriority at 24. ([`ObjectInfo::Thread`] is the 48-byte form of a 64-bit writer.)
    pub fn thread_32(exit_status: u32, teb: u32, process_id: u32, thread_id: u32) -> ObjectInfo {
        let mut b = Vec::new();
        put_u32(&mut b, 0, exit_status);
        put_u32(&mut b, 4, teb);
        put_u32(&mut b, 8, process_id);
        put_u32(&mut b, 12, thread_id);
        put_u32(&mut b, 16, 1); // AffinityMask
        put_u32(&mut b, 20, 8); // Priority
        put_u32(&mut b, 24, 8); // BasePriority
        ObjectInfo::Raw {
            info_type: MINI_THREAD_INFORMATION_1,
            bytes: b,
        }
    }

    /// The owner of a mutant as a CLIENT_ID of two 8-byte HANDLEs (UniqueProcess,
    /// UniqueThread), the form a 64-bit writer can store. ([`ObjectInfo::MutantOwner`] is the
    /// 8-byte form.)
    pub fn mutant_owner_64(process_id: u64, thread_id: u64) -> ObjectInfo {
        let mut b = Vec::new();
        put_u64(&mut b, 0, process_id);
        put_u64(&mut b, 8, thread_id);
        ObjectInfo::Raw {
            info_type: MINI_MUTANT_INFORMATION_2,
            bytes: b,
        }
    }
}

/// One handle of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    /// The handle value; [`crate::Process::handle`] assigns the next free one when None.
    pub handle: Option<u64>,
    /// The object type ("Event", "Mutant", "Thread", "File", ...).
    pub type_name: String,
    pub object_name: Option<String>,
    pub attributes: u32,
    pub granted_access: u32,
    pub handle_count: u32,
    pub pointer_count: u32,
    /// Object-specific information, chained in this order.
    pub info: Vec<ObjectInfo>,
}

impl Handle {
    /// A handle to an object of `type_name`, with the access a process usually holds.
    pub fn new(type_name: &str) -> Handle {
        Handle {
            handle: None,
            type_name: type_name.into(),
            object_name: None,
            attributes: 0,
            granted_access: 0x1f_0003,
            handle_count: 2,
            pointer_count: 65537,
            info: Vec::new(),
        }
    }

    /// An event object.
    pub fn event(manual_reset: bool, signaled: bool) -> Handle {
        Handle::new("Event").info(ObjectInfo::Event {
            manual_reset,
            signaled,
        })
    }

    /// A mutant owned by (process id, thread id), or free.
    pub fn mutant(owner: Option<(u32, u32)>) -> Handle {
        let mut h = Handle::new("Mutant").info(ObjectInfo::Mutant {
            count: if owner.is_some() { 0 } else { 1 },
            owned_by_caller: false,
            abandoned: false,
        });
        if let Some((process_id, thread_id)) = owner {
            h = h.info(ObjectInfo::MutantOwner {
                process_id,
                thread_id,
            });
        }
        h
    }

    /// A semaphore.
    pub fn semaphore(count: i32, limit: i32) -> Handle {
        Handle::new("Semaphore").info(ObjectInfo::Semaphore { count, limit })
    }

    /// A file (no object information).
    pub fn file(name: &str) -> Handle {
        Handle::new("File").name(name)
    }

    /// This handle value instead of the next free one.
    pub fn value(mut self, handle: u64) -> Handle {
        self.handle = Some(handle);
        self
    }

    pub fn name(mut self, name: &str) -> Handle {
        self.object_name = Some(name.into());
        self
    }

    pub fn access(mut self, granted_access: u32) -> Handle {
        self.granted_access = granted_access;
        self
    }

    pub fn info(mut self, info: ObjectInfo) -> Handle {
        self.info.push(info);
        self
    }
}
