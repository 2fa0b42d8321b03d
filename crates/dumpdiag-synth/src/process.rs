//! The description of a process: [`Process`] and the plain-data specs it takes (system facts,
//! modules, functions, threads, memory, handles, the exception). Every declaration places its
//! object at once and hands back its address or handle, so a test refers to what it built and
//! never types an address; [`Process::build`] turns the description into a
//! [`crate::SynthTarget`].

use dumpdiag_target::{Arch, RegionInfo, ThreadTimes, UnloadedModuleRecord};

use crate::bytes::{align, ptr_bytes, put, put_ptr, put_u32};
use crate::code::{round_locals, CodeLayout, Shape};
use crate::context::Registers;
use crate::handles::{Handle, ObjectInfo};
use crate::layout::Layout;
use crate::pe::Version;
use crate::stack::{Chain, Frame, Func, Thread};

/// Allocation granularity of Windows (VirtualAlloc reservations start on 64 KiB).
pub(crate) const GRANULARITY: u64 = 0x1_0000;
pub(crate) const PAGE: u64 = 0x1000;

/// PAGE_* protections and MEM_* states used in regions.
pub const PAGE_NOACCESS: u32 = 0x01;
pub const PAGE_READONLY: u32 = 0x02;
pub const PAGE_READWRITE: u32 = 0x04;
pub const PAGE_WRITECOPY: u32 = 0x08;
pub const PAGE_EXECUTE: u32 = 0x10;
pub const PAGE_EXECUTE_READ: u32 = 0x20;
pub const PAGE_EXECUTE_READWRITE: u32 = 0x40;
pub const PAGE_EXECUTE_WRITECOPY: u32 = 0x80;
pub const PAGE_GUARD: u32 = 0x100;

/// Facts about the machine, the OS and the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// `Arch::Amd64` or `Arch::X86`: the process's own machine (X86 for a WOW64 process,
    /// whose dump is nevertheless an x64 one: see [`Process::wow64`]).
    pub arch: Arch,
    pub os_major: u32,
    pub os_minor: u32,
    pub os_build: u32,
    /// VER_NT_WORKSTATION (1), VER_NT_SERVER (3)...
    pub product_type: u8,
    /// VER_PLATFORM_WIN32_NT (2).
    pub platform_id: u32,
    pub suite_mask: u16,
    pub processor_count: u8,
    pub processor_level: u16,
    pub processor_revision: u16,
    /// CPUID vendor string, recorded for x86 dumps.
    pub cpu_vendor: String,
    pub process_id: u32,
    /// Seconds since the Unix epoch.
    pub process_create_time: u32,
    pub process_user_time: u32,
    pub process_kernel_time: u32,
    /// MINIDUMP_HEADER.TimeDateStamp: when the dump was written (Unix seconds).
    pub dump_time: u32,
    /// MINIDUMP_TYPE flags of the header.
    pub dump_flags: u64,
    /// PEB NtGlobalFlag (gflags: 0x02000000 is page heap, 0x1000 user-mode stack traces).
    pub nt_global_flag: u32,
    pub session_id: u32,
    pub being_debugged: bool,
}

/// The strings of RTL_USER_PROCESS_PARAMETERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// ImagePathName; the main image's path when None.
    pub image_path: Option<String>,
    /// CommandLine; the quoted image path when None.
    pub command_line: Option<String>,
    pub current_directory: String,
    pub dll_path: String,
    pub window_title: String,
    pub desktop_info: String,
    /// Environment strings "NAME=value".
    pub environment: Vec<String>,
}

/// The debug identity of a module (its CodeView record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeView {
    /// RSDS with a GUID derived from the file name, age 1, PDB named after the file.
    Derived,
    /// No CodeView record and no debug directory.
    None,
    /// This RSDS identity.
    Pdb70 {
        guid: [u8; 16],
        age: u32,
        pdb_name: String,
    },
}

/// How a module is declared. Plain data with chainable setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Full path ("C:\\Windows\\System32\\ntdll.dll"); `.exe` files are images, others DLLs.
    pub path: String,
    /// Load address; chosen in the image or DLL area of the machine when None.
    pub base: Option<u64>,
    /// Bytes of `.text` (functions are placed in it in declaration order).
    pub text_size: u32,
    /// Bytes of `.data` (globals are placed in it in declaration order).
    pub data_size: u32,
    /// IMAGE_FILE_HEADER.TimeDateStamp; derived from the name when None.
    pub time_date_stamp: Option<u32>,
    pub checksum: u32,
    pub codeview: CodeView,
    pub version: Option<Version>,
    /// Is the image captured in the dump? Without it, the module has no exports nor unwind
    /// data in memory: only a Breakpad file can name its functions and walk its frames.
    pub in_dump: bool,
    /// Does the image have an export directory?
    pub exports: bool,
    /// Does the Breakpad symbol store get a `.sym` file for it?
    pub symbols: bool,
}

impl Module {
    pub fn new(path: &str) -> Module {
        Module {
            path: path.into(),
            base: None,
            text_size: 0x4000,
            data_size: 0x1000,
            time_date_stamp: None,
            checksum: 0,
            codeview: CodeView::Derived,
            version: None,
            in_dump: true,
            exports: true,
            symbols: true,
        }
    }

    pub fn base(mut self, base: u64) -> Module {
        self.base = Some(base);
        self
    }

    pub fn text_size(mut self, size: u32) -> Module {
        self.text_size = size;
        self
    }

    pub fn data_size(mut self, size: u32) -> Module {
        self.data_size = size;
        self
    }

    pub fn time_date_stamp(mut self, t: u32) -> Module {
        self.time_date_stamp = Some(t);
        self
    }

    pub fn version(mut self, v: Version) -> Module {
        self.version = Some(v);
        self
    }

    pub fn pdb(mut self, guid: [u8; 16], age: u32, pdb_name: &str) -> Module {
        self.codeview = CodeView::Pdb70 {
            guid,
            age,
            pdb_name: pdb_name.into(),
        };
        self
    }

    pub fn no_codeview(mut self) -> Module {
        self.codeview = CodeView::None;
        self
    }

    /// Leave the image out of the dump (no exports, no unwind data in memory).
    pub fn not_in_dump(mut self) -> Module {
        self.in_dump = false;
        self
    }

    pub fn no_exports(mut self) -> Module {
        self.exports = false;
        self
    }

    /// Leave the module out of the Breakpad symbol store.
    pub fn no_symbols(mut self) -> Module {
        self.symbols = false;
        self
    }

    pub(crate) fn file_name(&self) -> &str {
        dumpdiag_target::file_name_of(&self.path)
    }

    pub(crate) fn is_exe(&self) -> bool {
        self.file_name().to_ascii_lowercase().ends_with(".exe")
    }
}

/// A declared module: its index and load address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId {
    pub index: usize,
    pub base: u64,
}

/// How a function is declared. `Function::new(name, size)` is a function with a frame of the
/// machine's usual size and two call sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub size: u32,
    /// Bytes of locals (`sub rsp/esp, N`); rounded to keep the stack aligned. None: 0x28 on
    /// x64 (0x20 with a saved rbp), 0x10 on x86.
    pub locals: Option<u32>,
    /// Save the frame pointer in the prolog. None: no on x64, yes on x86 (EBP frames).
    pub save_fp: Option<bool>,
    /// A leaf without prolog.
    pub leaf: bool,
    /// A system-call stub with this service number (a leaf).
    pub syscall: Option<u32>,
    pub calls: u32,
    /// In the export directory (and so named by exports-only symbolization).
    pub exported: bool,
}

impl Function {
    pub fn new(name: &str, size: u32) -> Function {
        Function {
            name: name.into(),
            size,
            locals: None,
            save_fp: None,
            leaf: false,
            syscall: None,
            calls: 2,
            exported: true,
        }
    }

    /// A system-call stub (ntdll's Nt* functions).
    pub fn syscall(name: &str, number: u32) -> Function {
        let mut f = Function::new(name, 0x20);
        f.syscall = Some(number);
        f.calls = 0;
        f
    }

    pub fn locals(mut self, n: u32) -> Function {
        self.locals = Some(n);
        self
    }

    pub fn save_fp(mut self, yes: bool) -> Function {
        self.save_fp = Some(yes);
        self
    }

    pub fn leaf(mut self) -> Function {
        self.leaf = true;
        self.calls = 0;
        self
    }

    pub fn calls(mut self, n: u32) -> Function {
        self.calls = n;
        self
    }

    /// Not in the export directory.
    pub fn hidden(mut self) -> Function {
        self.exported = false;
        self
    }
}

/// An RTL_CRITICAL_SECTION's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalSection {
    /// DebugInfo: a RTL_CRITICAL_SECTION_DEBUG address, or -1 (none, Windows 8+).
    pub debug_info: u64,
    pub lock_count: i32,
    pub recursion_count: i32,
    /// OwningThread: the owner's thread id (0 when free).
    pub owning_thread: u32,
    /// LockSemaphore: the event waiters sleep on.
    pub lock_semaphore: u64,
    pub spin_count: u64,
}

impl CriticalSection {
    /// A free section.
    pub fn free() -> CriticalSection {
        CriticalSection {
            debug_info: u64::MAX,
            lock_count: -1,
            recursion_count: 0,
            owning_thread: 0,
            lock_semaphore: 0,
            spin_count: 0x0200_07d0,
        }
    }

    /// Held once by `owner` with `waiters` threads waiting. Vista+ LockCount: bit 0 clear when
    /// locked, bit 1 set when no waiter has been woken, the remaining bits the one's
    /// complement of the waiter count: -2 - 4 * waiters.
    pub fn owned(owner: u32, waiters: u32) -> CriticalSection {
        CriticalSection {
            lock_count: -2 - 4 * waiters as i32,
            recursion_count: 1,
            owning_thread: owner,
            ..CriticalSection::free()
        }
    }
}

/// Where the exception's context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionContext {
    /// The faulting thread's own context.
    Thread,
    /// The context at frame `n` of the faulting thread's chain (the frames above it are then
    /// what ran after the fault: the dispatcher, a reporting routine, a wait).
    Frame(usize),
    /// These registers.
    Registers(Registers),
}

/// The exception the dump was written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub thread: u32,
    pub code: u32,
    /// EXCEPTION_NONCONTINUABLE (1)...
    pub flags: u32,
    pub nested_record: u64,
    /// ExceptionAddress; the context's instruction pointer when None.
    pub address: Option<u64>,
    pub parameters: Vec<u64>,
    pub context: ExceptionContext,
}

impl Exception {
    pub fn new(thread: u32, code: u32) -> Exception {
        Exception {
            thread,
            code,
            flags: 0,
            nested_record: 0,
            address: None,
            parameters: Vec::new(),
            context: ExceptionContext::Thread,
        }
    }
}

/// A heap of the process: its header and the blocks handed out.
#[derive(Debug, Clone)]
pub(crate) struct HeapData {
    pub base: u64,
    pub reserve: u64,
    pub commit: u64,
    pub next: u64,
}

impl HeapData {
    /// A block of `size` bytes after its HEAP_ENTRY header; 16-byte granular as NT heaps are.
    pub(crate) fn alloc(&mut self, size: u64, l: &Layout) -> u64 {
        let user = self.next + l.heap_entry_size;
        let next = align(user + size, 16);
        assert!(
            next <= self.base + self.commit,
            "heap at {:#x} is full ({:#x} bytes committed)",
            self.base,
            self.commit
        );
        self.next = next;
        user
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FunctionData {
    pub name: String,
    pub rva: u32,
    pub size: u32,
    pub code: CodeLayout,
    pub exported: bool,
    pub targets: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct ModuleData {
    pub spec: Module,
    pub base: u64,
    pub time_date_stamp: u32,
    pub functions: Vec<FunctionData>,
    /// (name, rva, exported).
    pub globals: Vec<(String, u32, bool)>,
    pub text_used: u32,
    pub data_used: u32,
    /// Is the image 64-bit? The process's own bitness, except for the 64-bit modules of a
    /// WOW64 process's layer ([`Process::native_module`]).
    pub x64: bool,
}

/// Next free addresses of each area of the address space.
#[derive(Debug, Clone)]
pub(crate) struct Areas {
    pub exe: u64,
    pub dll: u64,
    pub dll_stride: u64,
    pub teb: u64,
    pub stack: u64,
    pub heap: u64,
    /// Next base of a 64-bit module of a WOW64 process's layer.
    pub native_dll: u64,
}

/// A process under construction.
#[derive(Debug, Clone)]
pub struct Process {
    pub system: System,
    pub params: Params,
    /// The name the built target gives as its path (`Target::path`).
    pub name: String,
    /// Stack reservation and committed (captured) size of threads declared from now on.
    pub stack_reserve: u64,
    pub stack_commit: u64,
    pub(crate) layout: Layout,
    pub(crate) modules: Vec<ModuleData>,
    pub(crate) threads: Vec<Thread>,
    pub(crate) heaps: Vec<HeapData>,
    /// Private committed allocations: (base, size, protect).
    pub(crate) allocs: Vec<(u64, u64, u32)>,
    /// Captured memory placed at explicit addresses.
    pub(crate) blocks: Vec<(u64, Vec<u8>)>,
    pub(crate) writes: Vec<(u64, Vec<u8>)>,
    pub(crate) regions: Vec<RegionInfo>,
    pub(crate) handles: Vec<(u64, Handle)>,
    pub(crate) next_handle: u64,
    pub(crate) exception: Option<Exception>,
    pub(crate) comment_a: Option<String>,
    pub(crate) comment_w: Option<String>,
    pub(crate) unloaded: Vec<UnloadedModuleRecord>,
    pub(crate) areas: Areas,
    pub(crate) peb: u64,
    /// The 64-bit layer of a WOW64 process ([`Process::wow64`]); None for a native process.
    pub(crate) wow64: Option<crate::wow64::Wow64Layer>,
    /// JIT code heaps ([`crate::jit`]).
    pub(crate) code_heaps: Vec<crate::jit::CodeHeapData>,
    /// Further segments of heaps: (segment, the heap it belongs to).
    pub(crate) heap_segments: Vec<(HeapData, u64)>,
    /// Does the dump carry a MemoryInfoList? ([`Process::no_memory_info`])
    pub(crate) memory_info: bool,
    /// The FunctionTable stream's descriptors ([`Process::function_table`]).
    pub(crate) function_tables: Vec<dumpdiag_target::FunctionTableDescriptor>,
}

impl Process {
    /// An empty process of `arch` (x64 or x86) on Windows 10 22H2, with its process heap.
    pub fn new(arch: Arch) -> Process {
        let x64 = match arch {
            Arch::Amd64 => true,
            Arch::X86 => false,
            other => panic!("synthetic processes are x64 or x86, not {other:?}"),
        };
        let layout = if x64 {
            crate::layout::X64
        } else {
            crate::layout::X86
        };
        let areas = if x64 {
            Areas {
                exe: 0x7ff6_1000_0000,
                dll: 0x7ff8_1000_0000,
                dll_stride: 0x100_0000,
                teb: 0x0000_00c5_e3a0_0000,
                stack: 0x0000_00c5_e3c0_0000,
                heap: 0x0000_0204_a4e0_0000,
                native_dll: 0x7ff8_1000_0000,
            }
        } else {
            Areas {
                exe: 0x0040_0000,
                dll: 0x7700_0000,
                dll_stride: 0x20_0000,
                teb: 0x0030_0000,
                stack: 0x0100_0000,
                heap: 0x0300_0000,
                // WOW64's own 64-bit DLLs load high, above the 32-bit address space.
                native_dll: 0x7ffd_1000_0000,
            }
        };
        let dump_time = 0x6600_0000;
        let mut p = Process {
            system: System {
                arch,
                os_major: 10,
                os_minor: 0,
                os_build: 19045,
                product_type: 1,
                platform_id: 2,
                suite_mask: 0x100,
                processor_count: 4,
                processor_level: 6,
                processor_revision: 0x9e0a,
                cpu_vendor: "GenuineIntel".into(),
                process_id: 0x1a2c,
                process_create_time: dump_time - 3600,
                process_user_time: 2,
                process_kernel_time: 1,
                dump_time,
                // MiniDumpWithHandleData | WithUnloadedModules | WithProcessThreadData |
                // WithFullMemoryInfo | WithThreadInfo | WithCodeSegs.
                dump_flags: 0x3924,
                nt_global_flag: 0,
                session_id: 1,
                being_debugged: false,
            },
            params: Params {
                image_path: None,
                command_line: None,
                current_directory: "C:\\Windows\\system32\\".into(),
                dll_path: String::new(),
                window_title: String::new(),
                desktop_info: "Winsta0\\Default".into(),
                environment: vec![
                    "COMPUTERNAME=SYNTH".into(),
                    "SystemRoot=C:\\Windows".into(),
                    "TEMP=C:\\Users\\test\\AppData\\Local\\Temp".into(),
                ],
            },
            name: "synthetic.dmp".into(),
            stack_reserve: 0x10_0000,
            stack_commit: 0x4000,
            layout,
            modules: Vec::new(),
            threads: Vec::new(),
            heaps: Vec::new(),
            allocs: Vec::new(),
            blocks: Vec::new(),
            writes: Vec::new(),
            regions: Vec::new(),
            handles: Vec::new(),
            next_handle: 4,
            exception: None,
            comment_a: None,
            comment_w: None,
            unloaded: Vec::new(),
            peb: areas.teb,
            areas,
            wow64: None,
            code_heaps: Vec::new(),
            heap_segments: Vec::new(),
            memory_info: true,
            function_tables: Vec::new(),
        };
        p.areas.teb += layout.peb_size.max(PAGE);
        p.heap(0x10_0000, 0x1_0000);
        p
    }

    /// The pointer size of the process.
    pub fn ptr(&self) -> u64 {
        self.layout.ptr
    }

    /// The structure layouts of the process's bitness.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Address of the PEB.
    pub fn peb(&self) -> u64 {
        self.peb
    }

    fn x64(&self) -> bool {
        self.layout.ptr == 8
    }

    // ---- modules and code -------------------------------------------------------------------

    /// Declare a module; returns its index and load address.
    pub fn module(&mut self, spec: Module) -> ModuleId {
        let x64 = self.x64();
        self.declare_module(spec, x64)
    }

    /// Declare a module of the given bitness (see [`Process::module`]).
    pub(crate) fn declare_module(&mut self, spec: Module, x64: bool) -> ModuleId {
        let text_size = align(spec.text_size as u64, PAGE) as u32;
        let data_size = align(spec.data_size.max(1) as u64, PAGE) as u32;
        let base = match spec.base {
            Some(b) => b,
            // A 64-bit module in a 32-bit process: WOW64's layer, loaded high.
            None if x64 != self.x64() => {
                let b = self.areas.native_dll;
                self.areas.native_dll += 0x100_0000;
                b
            }
            None if spec.is_exe() => {
                let b = self.areas.exe;
                self.areas.exe += self.areas.dll_stride;
                b
            }
            None => {
                let b = self.areas.dll;
                self.areas.dll += self.areas.dll_stride;
                b
            }
        };
        let time_date_stamp = spec.time_date_stamp.unwrap_or_else(|| {
            0x5f00_0000 | (fnv(spec.file_name().as_bytes(), 1) as u32 & 0xff_ffff)
        });
        let mut spec = spec;
        spec.text_size = text_size;
        spec.data_size = data_size;
        if let Some(v) = &mut spec.version {
            if v.file_type == 0 {
                v.file_type = if spec.path.to_ascii_lowercase().ends_with(".exe") {
                    1
                } else {
                    2
                };
            }
        }
        self.modules.push(ModuleData {
            spec,
            base,
            time_date_stamp,
            functions: Vec::new(),
            globals: Vec::new(),
            text_used: 0,
            data_used: 0,
            x64,
        });
        ModuleId {
            index: self.modules.len() - 1,
            base,
        }
    }

    /// A function with a frame of the usual size and two call sites; returns its handle.
    pub fn function(&mut self, module: ModuleId, name: &str, size: u32) -> Func {
        self.add_function(module, Function::new(name, size))
    }

    /// A function as `spec` describes it; returns its handle.
    pub fn add_function(&mut self, module: ModuleId, spec: Function) -> Func {
        // The code of the module's machine (a WOW64 process has modules of both).
        let x64 = self.modules[module.index].x64;
        let shape = if let Some(nr) = spec.syscall {
            Shape::Syscall(nr)
        } else if spec.leaf {
            Shape::Leaf
        } else {
            let save_fp = spec.save_fp.unwrap_or(!x64);
            let default = match (x64, save_fp) {
                (true, false) => 0x28,
                (true, true) => 0x20,
                (false, _) => 0x10,
            };
            Shape::Frame {
                locals: round_locals(x64, spec.locals.unwrap_or(default), save_fp),
                save_fp,
            }
        };
        let code = CodeLayout::new(x64, shape, spec.calls);
        assert!(
            code.len <= spec.size,
            "{}: {} bytes of code do not fit in {:#x}",
            spec.name,
            code.len,
            spec.size
        );
        let m = &mut self.modules[module.index];
        // Functions start 16-byte aligned, as compilers align them.
        let rva = 0x1000 + align(m.text_used as u64, 16) as u32;
        assert!(
            rva + spec.size <= 0x1000 + m.spec.text_size,
            "{}: .text of {} is full (raise Module::text_size)",
            spec.name,
            m.spec.path
        );
        m.text_used = rva - 0x1000 + spec.size;
        m.functions.push(FunctionData {
            name: spec.name,
            rva,
            size: spec.size,
            code,
            exported: spec.exported,
            targets: vec![0; spec.calls as usize],
        });
        Func {
            module: module.index,
            index: m.functions.len() - 1,
            addr: m.base + rva as u64,
            size: spec.size,
            code,
        }
    }

    /// Make call site `site` of `caller` call `target` (chains do this for the calls they
    /// name; the first target given to a site stays).
    pub fn call_target(&mut self, caller: Func, site: u32, target: u64) {
        let t = &mut self.function_data_mut(caller).targets[site as usize];
        if *t == 0 {
            *t = target;
        }
    }

    /// A named global of `size` bytes in the module's `.data`, exported (so exports-only
    /// symbolization names it too); returns its address.
    pub fn global(&mut self, module: ModuleId, name: &str, size: u32) -> u64 {
        let m = &mut self.modules[module.index];
        let off = align(m.data_used as u64, 16) as u32;
        assert!(
            off + size <= m.spec.data_size,
            "{name}: .data of {} is full (raise Module::data_size)",
            m.spec.path
        );
        m.data_used = off + size;
        let rva = 0x1000 + m.spec.text_size + off;
        m.globals.push((name.into(), rva, true));
        m.base + rva as u64
    }

    /// A module that was unloaded before the dump; returns its former base.
    pub fn unloaded_module(&mut self, path: &str, size: u32) -> u64 {
        let base = self.areas.dll;
        self.areas.dll += self.areas.dll_stride;
        self.unloaded.push(UnloadedModuleRecord {
            base,
            size,
            checksum: 0,
            time_date_stamp: 0x5f00_0000,
            path: path.into(),
        });
        base
    }

    // ---- threads ----------------------------------------------------------------------------

    /// A thread running `chain` (innermost first); its TEB and stack are placed now. The
    /// returned [`Thread`] takes registers, arguments and stack data.
    pub fn thread(&mut self, id: u32, chain: impl Into<Chain>) -> &mut Thread {
        let chain = chain.into();
        let l = self.layout;
        // Under WOW64 the thread's TEB64 (two pages) comes first and its own TEB32 follows
        // 0x2000 above it, where Wow64 places it.
        let teb64 = self.wow64.is_some().then_some(self.areas.teb);
        if teb64.is_some() {
            self.areas.teb += crate::layout::X64.teb_size;
        }
        let teb = self.areas.teb;
        self.areas.teb += l.teb_size;
        let deallocation_stack = self.areas.stack;
        self.areas.stack += align(self.stack_reserve, GRANULARITY);
        let stack_base = deallocation_stack + self.stack_reserve;
        let stack_limit = stack_base - self.stack_commit;
        let frames = Thread::lay_out(&chain, stack_base, l.ptr);
        let lowest = frames.iter().map(|f| f.sp).min().unwrap_or(stack_base);
        assert!(
            lowest > stack_limit + 0x100,
            "thread {id:#x}: the chain needs more than the {:#x} committed stack bytes",
            self.stack_commit
        );
        for (i, f) in frames.iter().enumerate().skip(1) {
            let (caller, site) = chain.callers[i - 1];
            debug_assert_eq!(caller, f.func);
            self.call_target(caller, site, frames[i - 1].func.addr);
        }
        let start = frames
            .iter()
            .position(|f| {
                let name = self.function_name(f.func);
                name == "BaseThreadInitThunk" || name == "RtlUserThreadStart"
            })
            .and_then(|i| i.checked_sub(1))
            .unwrap_or(frames.len() - 1);
        let start_address = frames[start].func.addr;
        self.threads.push(Thread {
            id,
            teb,
            stack_base,
            stack_limit,
            deallocation_stack,
            suspend_count: 1,
            priority_class: 0x20,
            priority: 0,
            name: None,
            last_error: 0,
            last_status: 0,
            owned_critical_sections: 0,
            tls: Vec::new(),
            times: ThreadTimes {
                dump_flags: 0,
                dump_error: 0,
                exit_status: 0x103,
                create_time: unix_to_filetime(self.system.process_create_time),
                exit_time: 0,
                kernel_time: 156_250,
                user_time: 312_500,
                start_address,
                affinity: (1u64 << self.system.processor_count.min(63)) - 1,
            },
            registers: Registers::default(),
            ptr: l.ptr,
            writes: Vec::new(),
            below: frames[0].sp,
            frames,
            wow64: None,
        });
        if let Some(teb64) = teb64 {
            self.attach_wow64_thread(teb64);
        }
        self.threads.last_mut().expect("just pushed")
    }

    /// The thread with this id.
    pub fn thread_mut(&mut self, id: u32) -> &mut Thread {
        self.threads
            .iter_mut()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no thread {id:#x}"))
    }

    /// The thread with this id.
    pub fn thread_ref(&self, id: u32) -> &Thread {
        self.threads
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no thread {id:#x}"))
    }

    /// The frames laid out for a thread.
    pub fn frames(&self, id: u32) -> &[Frame] {
        &self.thread_ref(id).frames
    }

    // ---- memory -----------------------------------------------------------------------------

    /// Write bytes into placed memory (a module, a stack, a heap, an allocation...); applied
    /// at build time after everything the builder writes itself, so it may also overwrite
    /// those structures. Panics at build when the bytes are not in captured memory.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> &mut Process {
        self.writes.push((addr, bytes.to_vec()));
        self
    }

    pub fn write_u32(&mut self, addr: u64, v: u32) -> &mut Process {
        self.write(addr, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, addr: u64, v: u64) -> &mut Process {
        self.write(addr, &v.to_le_bytes())
    }

    /// A pointer-sized value.
    pub fn write_ptr(&mut self, addr: u64, v: u64) -> &mut Process {
        let b = ptr_bytes(v, self.ptr());
        self.write(addr, &b)
    }

    /// NUL-terminated UTF-16 text.
    pub fn write_utf16(&mut self, addr: u64, text: &str) -> &mut Process {
        self.write(addr, &crate::bytes::utf16z(text))
    }

    /// An RTL_CRITICAL_SECTION of the process's bitness at `addr`.
    pub fn critical_section(&mut self, addr: u64, cs: CriticalSection) -> &mut Process {
        let l = self.layout;
        let mut b = Vec::new();
        put_ptr(&mut b, 0, cs.debug_info, l.ptr);
        put_u32(&mut b, l.cs_lock_count, cs.lock_count as u32);
        put_u32(&mut b, l.cs_recursion_count, cs.recursion_count as u32);
        put_ptr(&mut b, l.cs_owning_thread, cs.owning_thread as u64, l.ptr);
        put_ptr(&mut b, l.cs_lock_semaphore, cs.lock_semaphore, l.ptr);
        put_ptr(&mut b, l.cs_spin_count, cs.spin_count, l.ptr);
        b.resize(l.cs_size as usize, 0);
        self.write(addr, &b)
    }

    /// A private committed allocation of `size` bytes (captured), e.g. VirtualAlloc'd memory;
    /// returns its address.
    pub fn alloc(&mut self, size: u64, protect: u32) -> u64 {
        let base = self.areas.heap;
        let size = align(size.max(1), PAGE);
        self.areas.heap += align(size, GRANULARITY);
        self.allocs.push((base, size, protect));
        base
    }

    /// A new NT heap reserving `reserve` bytes of which `commit` are committed (and captured);
    /// its HEAP_SEGMENT header is written at build. Returns the heap's address (a HANDLE).
    pub fn heap(&mut self, reserve: u64, commit: u64) -> u64 {
        let base = self.areas.heap;
        let reserve = align(reserve.max(commit), GRANULARITY);
        self.areas.heap += reserve;
        self.heaps.push(HeapData {
            base,
            reserve,
            commit: align(commit, PAGE),
            next: base + self.layout.heap_header_size,
        });
        base
    }

    /// A further segment of NT heap `heap` (one of [`Process::heap`]'s, or the process heap),
    /// reserving `reserve` bytes of which `commit` are committed (and captured): what
    /// RtlpExtendHeap adds when the heap outgrows what it has. Its own allocation, with a
    /// _HEAP_SEGMENT header (SegmentSignature 0xffeeffee) whose Heap field points to `heap`;
    /// the PEB's heap list does not name it. Returns the segment's address.
    pub fn heap_segment(&mut self, heap: u64, reserve: u64, commit: u64) -> u64 {
        assert!(
            self.heaps.iter().any(|h| h.base == heap),
            "{heap:#x} is no heap of this process"
        );
        let base = self.areas.heap;
        let reserve = align(reserve.max(commit), GRANULARITY);
        self.areas.heap += reserve;
        let segment = HeapData {
            base,
            reserve,
            commit: align(commit.max(1), PAGE),
            next: base + self.layout.heap_header_size,
        };
        self.heap_segments.push((segment, heap));
        base
    }

    /// `_HEAP_FAILURE_INFORMATION` (`ntdll!RtlpHeapFailureInfo`, Windows 10/11), the record the
    /// heap manager fills before it ends the process with STATUS_HEAP_CORRUPTION, in the
    /// process's bitness: Version (1) at 0, StructureSize at 4 (0x6d0 on x64, 0x3d0 on x86),
    /// FailureType at 8, HeapAddress and Address at 0x10/0x18 (x64) or 0xc/0x10 (x86).
    pub fn heap_failure_bytes(&self, failure_type: u32, heap: u64, address: u64) -> Vec<u8> {
        let (size, heap_at, address_at) = if self.x64() {
            (0x6d0u32, 0x10, 0x18)
        } else {
            (0x3d0, 0xc, 0x10)
        };
        let ptr = self.ptr();
        let mut b = Vec::new();
        put_u32(&mut b, 0, 1);
        put_u32(&mut b, 4, size);
        put_u32(&mut b, 8, failure_type);
        put_ptr(&mut b, heap_at, heap, ptr);
        put_ptr(&mut b, address_at, address, ptr);
        b.resize(size as usize, 0);
        b
    }

    /// The process heap (PEB ProcessHeap), created with the process.
    pub fn process_heap(&self) -> u64 {
        self.heaps[0].base
    }

    /// A block of `size` bytes from `heap` (one of [`Process::heap`]'s, or the process heap);
    /// returns the block's user address.
    pub fn heap_alloc(&mut self, heap: u64, size: u64) -> u64 {
        let l = self.layout;
        self.heaps
            .iter_mut()
            .find(|h| h.base == heap)
            .unwrap_or_else(|| panic!("{heap:#x} is no heap of this process"))
            .alloc(size, &l)
    }

    /// Captured memory at an explicit address (for the rare test that needs one, such as the
    /// NULL page); no region is added for it (see [`Process::region`]).
    pub fn memory(&mut self, addr: u64, bytes: &[u8]) -> &mut Process {
        self.blocks.push((addr, bytes.to_vec()));
        self
    }

    /// An extra MemoryInfoList entry (reserved, free or uncaptured memory).
    pub fn region(&mut self, r: RegionInfo) -> &mut Process {
        self.regions.push(r);
        self
    }

    /// Write the dump without a MemoryInfoList (a writer not asked for
    /// MiniDumpWithFullMemoryInfo): the target lists no regions, and the header's flags lose
    /// that bit. What is captured stays captured.
    pub fn no_memory_info(&mut self) -> &mut Process {
        self.memory_info = false;
        self.system.dump_flags &= !0x800;
        self
    }

    /// Describe code heap `heap` in the dump's FunctionTable stream, as a runtime that
    /// registered it with RtlAddFunctionTable / RtlInstallFunctionTableCallback is dumped: a
    /// descriptor covering the heap (base and minimum address its start, maximum address its
    /// end) with a RUNTIME_FUNCTION (BeginAddress, EndAddress, UnwindInfoAddress, relative to
    /// the base) for each function placed in it so far, their UNWIND_INFO placed in the heap
    /// after them. x64 only. In the built target's extras only: the MDMP writer does not write
    /// the stream.
    pub fn function_table(&mut self, heap: crate::jit::CodeHeap) -> &mut Process {
        assert!(
            self.x64(),
            "function_table: RUNTIME_FUNCTION entries are x64's"
        );
        let h = &mut self.code_heaps[heap.index];
        let mut entries = Vec::new();
        let mut infos = Vec::new();
        for f in &h.functions {
            let info = f.code.unwind_info();
            let at = align(h.used, 4);
            h.used = at + info.len() as u64;
            assert!(
                h.used <= h.heap.size,
                "the code heap at {:#x} is full",
                h.heap.base
            );
            entries.extend_from_slice(&f.rva.to_le_bytes());
            entries.extend_from_slice(&(f.rva + f.size).to_le_bytes());
            entries.extend_from_slice(&(at as u32).to_le_bytes());
            infos.push((h.heap.base + at, info));
        }
        let entry_count = h.functions.len() as u32;
        self.writes.extend(infos);
        self.function_tables
            .push(dumpdiag_target::FunctionTableDescriptor {
                minimum_address: heap.base,
                maximum_address: heap.base + heap.size,
                base_address: heap.base,
                entry_count,
                entries,
            });
        self
    }

    // ---- handles, exception, comments -------------------------------------------------------

    /// Add a handle; returns its value.
    pub fn handle(&mut self, h: Handle) -> u64 {
        let value = h.handle.unwrap_or_else(|| {
            while self.handles.iter().any(|x| x.0 == self.next_handle) {
                self.next_handle += 4;
            }
            self.next_handle
        });
        if h.handle.is_none() {
            self.next_handle += 4;
        }
        self.handles.push((value, h));
        value
    }

    /// A handle to thread `id` of this process (type Thread, with its THREAD_BASIC_INFORMATION:
    /// running, its TEB and client id); returns its value.
    pub fn thread_handle(&mut self, id: u32) -> u64 {
        // A 64-bit dumper's query of a WOW64 thread answers its TEB64.
        let t = self.thread_ref(id);
        let teb = t.wow64.as_ref().map_or(t.teb, |w| w.teb64);
        let pid = self.system.process_id as u64;
        self.handle(Handle::new("Thread").info(ObjectInfo::Thread {
            exit_status: 0x103,
            teb,
            process_id: pid,
            thread_id: id as u64,
        }))
    }

    /// The exception the dump was written for.
    pub fn exception(&mut self, e: Exception) -> &mut Process {
        self.exception = Some(e);
        self
    }

    /// CommentStreamA text.
    pub fn comment_a(&mut self, text: &str) -> &mut Process {
        self.comment_a = Some(text.into());
        self
    }

    /// CommentStreamW text.
    pub fn comment_w(&mut self, text: &str) -> &mut Process {
        self.comment_w = Some(text.into());
        self
    }

    /// An EXCEPTION_RECORD of the process's bitness (for a test to leave on a stack).
    pub fn exception_record_bytes(&self, e: &dumpdiag_target::ExceptionRecord) -> Vec<u8> {
        let l = self.layout;
        let mut b = Vec::new();
        put_u32(&mut b, 0, e.code);
        put_u32(&mut b, 4, e.flags);
        put_ptr(&mut b, l.er_record, e.nested_record, l.ptr);
        put_ptr(&mut b, l.er_address, e.address, l.ptr);
        put_u32(
            &mut b,
            l.er_number_parameters,
            e.parameters.len().min(15) as u32,
        );
        for (i, p) in e.parameters.iter().take(15).enumerate() {
            put_ptr(&mut b, l.er_information + i as u64 * l.ptr, *p, l.ptr);
        }
        b.resize(l.er_size as usize, 0);
        b
    }

    /// The CONTEXT bytes of the process's machine for `regs`.
    pub fn context_bytes(&self, regs: &Registers) -> Vec<u8> {
        regs.context_bytes(self.system.arch)
    }

    /// Build the target.
    pub fn build(&self) -> crate::SynthTarget {
        crate::build::build(self)
    }
}

/// FNV-1a, for identities derived from names (GUIDs, timestamps) that are stable run to run.
pub(crate) fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x1000_0000_01b3);
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

/// Unix seconds to FILETIME (100 ns units since 1601).
pub fn unix_to_filetime(t: u32) -> u64 {
    (t as u64 + 11_644_473_600) * 10_000_000
}

/// Store `bytes` at `addr` in a block list (used by the builder).
pub(crate) fn store(blocks: &mut [(u64, Vec<u8>)], addr: u64, bytes: &[u8]) {
    let mut done = 0usize;
    while done < bytes.len() {
        let a = addr + done as u64;
        let b = blocks
            .iter_mut()
            .find(|(base, v)| a >= *base && a < base + v.len() as u64)
            .unwrap_or_else(|| panic!("{a:#x} is not in captured memory"));
        let off = (a - b.0) as usize;
        let n = (b.1.len() - off).min(bytes.len() - done);
        put(&mut b.1, off as u64, &bytes[done..done + n]);
        done += n;
    }
}
