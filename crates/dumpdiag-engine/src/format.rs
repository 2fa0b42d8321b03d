//! Numbers, addresses and times the way WinDbg prints them.

/// An address or pointer-sized value: 64-bit as `00007ff7`a13110d9`, 32-bit as `0804a000`.
pub fn addr(v: u64, ptr: u64) -> String {
    dumpdiag_target::windbg_address(v, ptr)
}

/// 64-bit value without the separator (as `!teb` and `.exr` print pointers).
pub fn plain(v: u64, ptr: u64) -> String {
    if ptr == 4 {
        format!("{:08x}", v as u32)
    } else {
        format!("{v:016x}")
    }
}

/// A size the way `!address` prints it: `0`0c4d0000 ( 196.813 MB)`.
pub fn size_with_unit(v: u64) -> String {
    let (n, unit) = if v >= 1 << 40 {
        (v as f64 / (1u64 << 40) as f64, "TB")
    } else if v >= 1 << 30 {
        (v as f64 / (1u64 << 30) as f64, "GB")
    } else if v >= 1 << 20 {
        (v as f64 / (1u64 << 20) as f64, "MB")
    } else {
        (v as f64 / 1024.0, "kB")
    };
    format!("{:x}`{:08x} ({n:8.3} {unit})", v >> 32, v & 0xffff_ffff)
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `Wed Jul 25 11:39:44{fraction} 2018` for Unix seconds.
fn calendar_time(unix: i64, fraction: &str) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let wd = DAYS[days.rem_euclid(7) as usize];
    format!(
        "{wd} {} {d:2} {:02}:{:02}:{:02}{fraction} {y}",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `Wed Jul 25 11:39:44.000 2018 (UTC + 0:00)` for Unix seconds.
pub fn debug_time(unix: i64) -> String {
    format!("{} (UTC + 0:00)", calendar_time(unix, ".000"))
}

/// `Wed Jul 25 11:39:44 2018` (module timestamps).
pub fn short_time(unix: i64) -> String {
    calendar_time(unix, "")
}

/// A duration in FILETIME units as `0 days 0:00:00.015`.
pub fn duration_100ns(t: u64) -> String {
    let ms = t / 10_000;
    let s = ms / 1000;
    format!(
        "{} days {}:{:02}:{:02}.{:03}",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// A duration in seconds as `0 days 0:00:01.000`.
pub fn duration_secs(s: u64) -> String {
    duration_100ns(s.saturating_mul(10_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_like_windbg() {
        assert_eq!(addr(0x7ff7a13110d9, 8), "00007ff7`a13110d9");
        assert_eq!(addr(0x45, 4), "00000045");
        assert_eq!(plain(0x45, 8), "0000000000000045");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(short_time(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(short_time(1_532_518_784), "Wed Jul 25 11:39:44 2018");
        assert_eq!(duration_100ns(150_000), "0 days 0:00:00.015");
    }
}
