//! Field offsets of the user-mode structures that differ between 32- and 64-bit processes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ptr: u64,
    // TEB
    pub teb_stack_base: u64,
    pub teb_stack_limit: u64,
    pub teb_sub_system_tib: u64,
    pub teb_fiber_data: u64,
    pub teb_arbitrary: u64,
    pub teb_self: u64,
    pub teb_environment: u64,
    pub teb_client_id: u64,
    pub teb_rpc_handle: u64,
    pub teb_tls_pointer: u64,
    pub teb_peb: u64,
    pub teb_last_error: u64,
    pub teb_owned_cs: u64,
    pub teb_last_status: u64,
    pub teb_deallocation_stack: u64,
    pub teb_tls_slots: u64,
    pub teb_hard_error_mode: u64,
    // PEB
    pub peb_image_base: u64,
    pub peb_ldr: u64,
    pub peb_process_parameters: u64,
    pub peb_sub_system_data: u64,
    pub peb_process_heap: u64,
    pub peb_number_of_processors: u64,
    pub peb_nt_global_flag: u64,
    pub peb_number_of_heaps: u64,
    pub peb_process_heaps: u64,
    pub peb_os_major: u64,
    pub peb_os_build: u64,
    pub peb_session_id: u64,
    // PEB_LDR_DATA
    pub ldr_in_load_order: u64,
    pub ldr_in_memory_order: u64,
    pub ldr_in_init_order: u64,
    // LDR_DATA_TABLE_ENTRY
    pub entry_dll_base: u64,
    pub entry_entry_point: u64,
    pub entry_size_of_image: u64,
    pub entry_full_name: u64,
    pub entry_base_name: u64,
    pub entry_time_date_stamp: u64,
    // RTL_USER_PROCESS_PARAMETERS
    pub params_current_directory: u64,
    pub params_dll_path: u64,
    pub params_image_path: u64,
    pub params_command_line: u64,
    pub params_environment: u64,
    pub params_window_title: u64,
    pub params_desktop_info: u64,
    pub params_environment_size: u64,
    /// Size of UNICODE_STRING.
    pub unicode_string: u64,
    // EXCEPTION_RECORD (winnt.h): ExceptionCode +0, ExceptionFlags +4, then
    pub exr_nested_record: u64,
    pub exr_address: u64,
    pub exr_number_parameters: u64,
    pub exr_information: u64,
    // HEAP_SEGMENT (and the HEAP that starts with one): after its HEAP_ENTRY
    pub heap_segment_signature: u64,
    pub heap_segment_heap: u64,
}

pub const X64: Layout = Layout {
    ptr: 8,
    teb_stack_base: 0x8,
    teb_stack_limit: 0x10,
    teb_sub_system_tib: 0x18,
    teb_fiber_data: 0x20,
    teb_arbitrary: 0x28,
    teb_self: 0x30,
    teb_environment: 0x38,
    teb_client_id: 0x40,
    teb_rpc_handle: 0x50,
    teb_tls_pointer: 0x58,
    teb_peb: 0x60,
    teb_last_error: 0x68,
    teb_owned_cs: 0x6c,
    teb_last_status: 0x1250,
    teb_deallocation_stack: 0x1478,
    teb_tls_slots: 0x1480,
    teb_hard_error_mode: 0x16b0,
    peb_image_base: 0x10,
    peb_ldr: 0x18,
    peb_process_parameters: 0x20,
    peb_sub_system_data: 0x28,
    peb_process_heap: 0x30,
    peb_number_of_processors: 0xb8,
    peb_nt_global_flag: 0xbc,
    peb_number_of_heaps: 0xe8,
    peb_process_heaps: 0xf0,
    peb_os_major: 0x118,
    peb_os_build: 0x120,
    peb_session_id: 0x2c0,
    ldr_in_load_order: 0x10,
    ldr_in_memory_order: 0x20,
    ldr_in_init_order: 0x30,
    entry_dll_base: 0x30,
    entry_entry_point: 0x38,
    entry_size_of_image: 0x40,
    entry_full_name: 0x48,
    entry_base_name: 0x58,
    entry_time_date_stamp: 0x80,
    params_current_directory: 0x38,
    params_dll_path: 0x50,
    params_image_path: 0x60,
    params_command_line: 0x70,
    params_environment: 0x80,
    params_window_title: 0xb0,
    params_desktop_info: 0xc0,
    params_environment_size: 0x3f0,
    unicode_string: 16,
    exr_nested_record: 0x8,
    exr_address: 0x10,
    exr_number_parameters: 0x18,
    exr_information: 0x20,
    heap_segment_signature: 0x10,
    heap_segment_heap: 0x28,
};

pub const X86: Layout = Layout {
    ptr: 4,
    teb_stack_base: 0x4,
    teb_stack_limit: 0x8,
    teb_sub_system_tib: 0xc,
    teb_fiber_data: 0x10,
    teb_arbitrary: 0x14,
    teb_self: 0x18,
    teb_environment: 0x1c,
    teb_client_id: 0x20,
    teb_rpc_handle: 0x28,
    teb_tls_pointer: 0x2c,
    teb_peb: 0x30,
    teb_last_error: 0x34,
    teb_owned_cs: 0x38,
    teb_last_status: 0xbf4,
    teb_deallocation_stack: 0xe0c,
    teb_tls_slots: 0xe10,
    teb_hard_error_mode: 0xf28,
    peb_image_base: 0x8,
    peb_ldr: 0xc,
    peb_process_parameters: 0x10,
    peb_sub_system_data: 0x14,
    peb_process_heap: 0x18,
    peb_number_of_processors: 0x64,
    peb_nt_global_flag: 0x68,
    peb_number_of_heaps: 0x88,
    peb_process_heaps: 0x90,
    peb_os_major: 0xa4,
    peb_os_build: 0xac,
    peb_session_id: 0x1d4,
    ldr_in_load_order: 0xc,
    ldr_in_memory_order: 0x14,
    ldr_in_init_order: 0x1c,
    entry_dll_base: 0x18,
    entry_entry_point: 0x1c,
    entry_size_of_image: 0x20,
    entry_full_name: 0x24,
    entry_base_name: 0x2c,
    entry_time_date_stamp: 0x44,
    params_current_directory: 0x24,
    params_dll_path: 0x30,
    params_image_path: 0x38,
    params_command_line: 0x40,
    params_environment: 0x48,
    params_window_title: 0x70,
    params_desktop_info: 0x78,
    params_environment_size: 0x290,
    unicode_string: 8,
    exr_nested_record: 0x8,
    exr_address: 0xc,
    exr_number_parameters: 0x10,
    exr_information: 0x14,
    heap_segment_signature: 0x8,
    heap_segment_heap: 0x18,
};

impl Layout {
    pub fn for_pointer_size(ptr: u64) -> Layout {
        if ptr == 4 {
            X86
        } else {
            X64
        }
    }

    /// Read a UNICODE_STRING at `addr`; None when it or its buffer is not in the dump.
    pub fn read_unicode_string(
        &self,
        mem: &dyn dumpdiag_target::MemoryReader,
        addr: u64,
    ) -> Option<String> {
        use dumpdiag_target::MemoryExt;
        let len = mem.read_u16(addr)? as usize;
        let buf = mem.read_ptr(addr.wrapping_add(self.ptr), self.ptr)?;
        if len == 0 {
            return Some(String::new());
        }
        mem.read_utf16_exact(buf, len)
    }
}
