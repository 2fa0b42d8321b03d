//! The Thread Environment Block.

use crate::Layout;
use dumpdiag_target::{MemoryExt, MemoryReader};

#[derive(Debug, Clone, Default)]
pub struct Teb {
    pub address: u64,
    pub exception_list: u64,
    pub stack_base: u64,
    pub stack_limit: u64,
    pub sub_system_tib: u64,
    pub fiber_data: u64,
    pub arbitrary_user_pointer: u64,
    pub self_ptr: u64,
    pub environment_pointer: u64,
    pub process_id: u64,
    pub thread_id: u64,
    pub rpc_handle: u64,
    pub tls_storage: u64,
    pub peb: u64,
    pub last_error: u32,
    pub owned_locks: u32,
    pub last_status: Option<u32>,
    pub deallocation_stack: Option<u64>,
    pub hard_error_mode: Option<u32>,
}

/// Read a TEB of the given layout. None when its first page is not in the dump.
pub fn read_teb(mem: &dyn MemoryReader, address: u64, l: &Layout) -> Option<Teb> {
    let p = |off: u64| mem.read_ptr(address.wrapping_add(off), l.ptr);
    Some(Teb {
        address,
        exception_list: p(0)?,
        stack_base: p(l.teb_stack_base)?,
        stack_limit: p(l.teb_stack_limit)?,
        sub_system_tib: p(l.teb_sub_system_tib).unwrap_or(0),
        fiber_data: p(l.teb_fiber_data).unwrap_or(0),
        arbitrary_user_pointer: p(l.teb_arbitrary).unwrap_or(0),
        self_ptr: p(l.teb_self).unwrap_or(0),
        environment_pointer: p(l.teb_environment).unwrap_or(0),
        process_id: p(l.teb_client_id).unwrap_or(0),
        thread_id: p(l.teb_client_id + l.ptr).unwrap_or(0),
        rpc_handle: p(l.teb_rpc_handle).unwrap_or(0),
        tls_storage: p(l.teb_tls_pointer).unwrap_or(0),
        peb: p(l.teb_peb).unwrap_or(0),
        last_error: mem
            .read_u32(address.wrapping_add(l.teb_last_error))
            .unwrap_or(0),
        owned_locks: mem
            .read_u32(address.wrapping_add(l.teb_owned_cs))
            .unwrap_or(0),
        last_status: mem.read_u32(address.wrapping_add(l.teb_last_status)),
        deallocation_stack: p(l.teb_deallocation_stack),
        hard_error_mode: mem.read_u32(address.wrapping_add(l.teb_hard_error_mode)),
    })
}
