//! Field offsets of the Windows user-mode structures this crate writes, for both bitnesses.
//!
//! Stated here on their own (not taken from `dumpdiag-os`) on purpose: the synthetic process is
//! an independent statement of the Windows layouts, so a round trip through the readers checks
//! them rather than echoing them. Offsets are those of Windows 10/11 (ntdll's public symbols:
//! `_TEB`, `_PEB`, `_PEB_LDR_DATA`, `_LDR_DATA_TABLE_ENTRY`, `_RTL_USER_PROCESS_PARAMETERS`,
//! `_RTL_CRITICAL_SECTION`, `_HEAP_SEGMENT`); the fields before each offset are stable since
//! Windows XP.

/// Offsets of one bitness. Every field is named after the structure and member it locates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Pointer (and HANDLE, ULONG_PTR) size.
    pub ptr: u64,

    // _TEB (starts with _NT_TIB)
    /// Bytes given to one TEB allocation (x64 `_TEB` is 0x1838 bytes: two pages).
    pub teb_size: u64,
    /// NtTib.ExceptionList.
    pub teb_exception_list: u64,
    /// NtTib.StackBase.
    pub teb_stack_base: u64,
    /// NtTib.StackLimit.
    pub teb_stack_limit: u64,
    /// NtTib.FiberData (holds the OS version word 0x1e00 when the thread is no fiber).
    pub teb_fiber_data: u64,
    /// NtTib.Self.
    pub teb_self: u64,
    /// ClientId (CLIENT_ID: UniqueProcess, UniqueThread).
    pub teb_client_id: u64,
    /// ThreadLocalStoragePointer.
    pub teb_tls_pointer: u64,
    /// ProcessEnvironmentBlock.
    pub teb_peb: u64,
    /// LastErrorValue (ULONG).
    pub teb_last_error: u64,
    /// CountOfOwnedCriticalSections (ULONG).
    pub teb_owned_cs: u64,
    /// LastStatusValue (NTSTATUS).
    pub teb_last_status: u64,
    /// DeallocationStack: the base of the stack's reservation.
    pub teb_deallocation_stack: u64,
    /// TlsSlots (64 pointer-sized slots).
    pub teb_tls_slots: u64,
    /// HardErrorMode (ULONG).
    pub teb_hard_error_mode: u64,

    // _PEB
    /// Bytes given to the PEB allocation.
    pub peb_size: u64,
    /// Mutant (HANDLE, -1 when none).
    pub peb_mutant: u64,
    /// ImageBaseAddress.
    pub peb_image_base: u64,
    /// Ldr (PPEB_LDR_DATA).
    pub peb_ldr: u64,
    /// ProcessParameters (PRTL_USER_PROCESS_PARAMETERS).
    pub peb_process_parameters: u64,
    /// ProcessHeap.
    pub peb_process_heap: u64,
    /// NumberOfProcessors (ULONG).
    pub peb_number_of_processors: u64,
    /// NtGlobalFlag (ULONG).
    pub peb_nt_global_flag: u64,
    /// NumberOfHeaps (ULONG), MaximumNumberOfHeaps follows it.
    pub peb_number_of_heaps: u64,
    /// ProcessHeaps (PVOID*).
    pub peb_process_heaps: u64,
    /// OSMajorVersion (ULONG), then OSMinorVersion (ULONG), OSBuildNumber (USHORT),
    /// OSCSDVersion (USHORT), OSPlatformId (ULONG).
    pub peb_os_major: u64,
    /// SessionId (ULONG).
    pub peb_session_id: u64,

    // _PEB_LDR_DATA
    /// sizeof(_PEB_LDR_DATA), also written to its Length field.
    pub ldr_size: u64,
    /// InLoadOrderModuleList (LIST_ENTRY).
    pub ldr_in_load_order: u64,
    /// InMemoryOrderModuleList.
    pub ldr_in_memory_order: u64,
    /// InInitializationOrderModuleList.
    pub ldr_in_init_order: u64,

    // _LDR_DATA_TABLE_ENTRY
    /// Bytes given to one entry.
    pub entry_size: u64,
    /// InMemoryOrderLinks (InLoadOrderLinks is at 0).
    pub entry_memory_links: u64,
    /// InInitializationOrderLinks.
    pub entry_init_links: u64,
    /// DllBase.
    pub entry_dll_base: u64,
    /// EntryPoint.
    pub entry_entry_point: u64,
    /// SizeOfImage (ULONG).
    pub entry_size_of_image: u64,
    /// FullDllName (UNICODE_STRING).
    pub entry_full_name: u64,
    /// BaseDllName (UNICODE_STRING).
    pub entry_base_name: u64,
    /// Flags (ULONG).
    pub entry_flags: u64,
    /// ObsoleteLoadCount (USHORT).
    pub entry_load_count: u64,
    /// TimeDateStamp (ULONG).
    pub entry_time_date_stamp: u64,

    // _RTL_USER_PROCESS_PARAMETERS
    /// Bytes given to the structure (its Length and MaximumLength fields say so too).
    pub params_size: u64,
    /// Flags (ULONG; RTL_USER_PROC_PARAMS_NORMALIZED = 1 means the strings hold addresses).
    pub params_flags: u64,
    /// CurrentDirectory.DosPath (UNICODE_STRING, first member of CURDIR).
    pub params_current_directory: u64,
    /// DllPath.
    pub params_dll_path: u64,
    /// ImagePathName.
    pub params_image_path: u64,
    /// CommandLine.
    pub params_command_line: u64,
    /// Environment (PVOID).
    pub params_environment: u64,
    /// WindowTitle.
    pub params_window_title: u64,
    /// DesktopInfo.
    pub params_desktop_info: u64,
    /// EnvironmentSize (ULONG_PTR).
    pub params_environment_size: u64,

    /// sizeof(UNICODE_STRING): Length, MaximumLength (USHORT each), Buffer (PWSTR, aligned).
    pub unicode_string: u64,

    // _RTL_CRITICAL_SECTION
    /// DebugInfo at 0, then LockCount (LONG), RecursionCount (LONG), OwningThread (HANDLE),
    /// LockSemaphore (HANDLE), SpinCount (ULONG_PTR).
    pub cs_lock_count: u64,
    pub cs_recursion_count: u64,
    pub cs_owning_thread: u64,
    pub cs_lock_semaphore: u64,
    pub cs_spin_count: u64,
    /// sizeof(RTL_CRITICAL_SECTION).
    pub cs_size: u64,

    // _HEAP_SEGMENT (the first member of _HEAP), after its HEAP_ENTRY
    /// SegmentSignature (ULONG, 0xffeeffee).
    pub heap_segment_signature: u64,
    /// SegmentFlags (ULONG).
    pub heap_segment_flags: u64,
    /// Heap (the _HEAP the segment belongs to).
    pub heap_heap: u64,
    /// BaseAddress.
    pub heap_base_address: u64,
    /// NumberOfPages (ULONG).
    pub heap_number_of_pages: u64,
    /// FirstEntry.
    pub heap_first_entry: u64,
    /// LastValidEntry.
    pub heap_last_valid_entry: u64,
    /// Bytes of the heap header before the first block this crate hands out.
    pub heap_header_size: u64,
    /// sizeof(HEAP_ENTRY): the header in front of every heap block.
    pub heap_entry_size: u64,

    // EXCEPTION_RECORD (EXCEPTION_RECORD64 on x64, EXCEPTION_RECORD32 on x86)
    /// ExceptionRecord (the nested record pointer), after ExceptionCode and ExceptionFlags.
    pub er_record: u64,
    /// ExceptionAddress.
    pub er_address: u64,
    /// NumberParameters (ULONG).
    pub er_number_parameters: u64,
    /// ExceptionInformation (15 ULONG_PTRs).
    pub er_information: u64,
    /// sizeof(EXCEPTION_RECORD).
    pub er_size: u64,
}

/// 64-bit processes.
pub const X64: Layout = Layout {
    ptr: 8,
    teb_size: 0x2000,
    teb_exception_list: 0x0,
    teb_stack_base: 0x8,
    teb_stack_limit: 0x10,
    teb_fiber_data: 0x20,
    teb_self: 0x30,
    teb_client_id: 0x40,
    teb_tls_pointer: 0x58,
    teb_peb: 0x60,
    teb_last_error: 0x68,
    teb_owned_cs: 0x6c,
    teb_last_status: 0x1250,
    teb_deallocation_stack: 0x1478,
    teb_tls_slots: 0x1480,
    teb_hard_error_mode: 0x16b0,
    peb_size: 0x1000,
    peb_mutant: 0x8,
    peb_image_base: 0x10,
    peb_ldr: 0x18,
    peb_process_parameters: 0x20,
    peb_process_heap: 0x30,
    peb_number_of_processors: 0xb8,
    peb_nt_global_flag: 0xbc,
    peb_number_of_heaps: 0xe8,
    peb_process_heaps: 0xf0,
    peb_os_major: 0x118,
    peb_session_id: 0x2c0,
    ldr_size: 0x58,
    ldr_in_load_order: 0x10,
    ldr_in_memory_order: 0x20,
    ldr_in_init_order: 0x30,
    entry_size: 0x120,
    entry_memory_links: 0x10,
    entry_init_links: 0x20,
    entry_dll_base: 0x30,
    entry_entry_point: 0x38,
    entry_size_of_image: 0x40,
    entry_full_name: 0x48,
    entry_base_name: 0x58,
    entry_flags: 0x68,
    entry_load_count: 0x6c,
    entry_time_date_stamp: 0x80,
    params_size: 0x440,
    params_flags: 0x8,
    params_current_directory: 0x38,
    params_dll_path: 0x50,
    params_image_path: 0x60,
    params_command_line: 0x70,
    params_environment: 0x80,
    params_window_title: 0xb0,
    params_desktop_info: 0xc0,
    params_environment_size: 0x3f0,
    unicode_string: 16,
    cs_lock_count: 0x8,
    cs_recursion_count: 0xc,
    cs_owning_thread: 0x10,
    cs_lock_semaphore: 0x18,
    cs_spin_count: 0x20,
    cs_size: 0x28,
    heap_segment_signature: 0x10,
    heap_segment_flags: 0x14,
    heap_heap: 0x28,
    heap_base_address: 0x30,
    heap_number_of_pages: 0x38,
    heap_first_entry: 0x40,
    heap_last_valid_entry: 0x48,
    heap_header_size: 0x740,
    heap_entry_size: 0x10,
    er_record: 0x8,
    er_address: 0x10,
    er_number_parameters: 0x18,
    er_information: 0x20,
    er_size: 0x98,
};

/// 32-bit processes.
pub const X86: Layout = Layout {
    ptr: 4,
    teb_size: 0x1000,
    teb_exception_list: 0x0,
    teb_stack_base: 0x4,
    teb_stack_limit: 0x8,
    teb_fiber_data: 0x10,
    teb_self: 0x18,
    teb_client_id: 0x20,
    teb_tls_pointer: 0x2c,
    teb_peb: 0x30,
    teb_last_error: 0x34,
    teb_owned_cs: 0x38,
    teb_last_status: 0xbf4,
    teb_deallocation_stack: 0xe0c,
    teb_tls_slots: 0xe10,
    teb_hard_error_mode: 0xf28,
    peb_size: 0x1000,
    peb_mutant: 0x4,
    peb_image_base: 0x8,
    peb_ldr: 0xc,
    peb_process_parameters: 0x10,
    peb_process_heap: 0x18,
    peb_number_of_processors: 0x64,
    peb_nt_global_flag: 0x68,
    peb_number_of_heaps: 0x88,
    peb_process_heaps: 0x90,
    peb_os_major: 0xa4,
    peb_session_id: 0x1d4,
    ldr_size: 0x30,
    ldr_in_load_order: 0xc,
    ldr_in_memory_order: 0x14,
    ldr_in_init_order: 0x1c,
    entry_size: 0xa8,
    entry_memory_links: 0x8,
    entry_init_links: 0x10,
    entry_dll_base: 0x18,
    entry_entry_point: 0x1c,
    entry_size_of_image: 0x20,
    entry_full_name: 0x24,
    entry_base_name: 0x2c,
    entry_flags: 0x34,
    entry_load_count: 0x38,
    entry_time_date_stamp: 0x44,
    params_size: 0x2c0,
    params_flags: 0x8,
    params_current_directory: 0x24,
    params_dll_path: 0x30,
    params_image_path: 0x38,
    params_command_line: 0x40,
    params_environment: 0x48,
    params_window_title: 0x70,
    params_desktop_info: 0x78,
    params_environment_size: 0x290,
    unicode_string: 8,
    cs_lock_count: 0x4,
    cs_recursion_count: 0x8,
    cs_owning_thread: 0xc,
    cs_lock_semaphore: 0x10,
    cs_spin_count: 0x14,
    cs_size: 0x18,
    heap_segment_signature: 0x8,
    heap_segment_flags: 0xc,
    heap_heap: 0x18,
    heap_base_address: 0x1c,
    heap_number_of_pages: 0x20,
    heap_first_entry: 0x24,
    heap_last_valid_entry: 0x28,
    heap_header_size: 0x580,
    heap_entry_size: 0x8,
    er_record: 0x8,
    er_address: 0xc,
    er_number_parameters: 0x10,
    er_information: 0x14,
    er_size: 0x50,
};

impl Layout {
    /// The layout of a pointer size (4: x86, otherwise x64).
    pub fn for_pointer_size(ptr: u64) -> Layout {
        if ptr == 4 {
            X86
        } else {
            X64
        }
    }
}
