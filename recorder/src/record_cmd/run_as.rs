//! Whom `-- CMD` runs as and whom the trace belongs to: tcpdump's `-Z`, with sudo's invoking
//! user as the default, so `sudo spliff record -o t.pcapng -- curl ...` runs curl as you and
//! leaves a trace you own (still mode 0600).

use std::{ffi::CString, os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, bail};

use super::output_file::Owner;

/// A user to run as: ids, and the supplementary groups the user has at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// Name (for messages), or the uid as text when the user has no passwd entry.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

impl RunAs {
    /// `-Z USER` if given (a name or a uid; `root` keeps root), else the user who ran sudo
    /// (SUDO_UID/SUDO_GID, set by sudo), else nobody: the recorder's own identity.
    pub fn choose(explicit: Option<&str>) -> anyhow::Result<Option<Self>> {
        let chosen = match explicit {
            Some(user) => Some(Self::lookup(user)?),
            None => Self::from_sudo()?,
        };
        // SAFETY: geteuid() cannot fail.
        let euid = unsafe { libc::geteuid() };
        Ok(chosen.filter(|user| user.uid != euid))
    }

    /// The trace's owner.
    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// Makes `command` drop to this user before exec: groups, then gid, then uid, the order in
    /// which each step still has the privilege it needs. (Command::uid/gid would run before
    /// a pre_exec hook, so setgroups would come too late.)
    pub fn apply(&self, command: &mut Command) {
        let (groups, gid, uid) = (self.groups.clone(), self.gid, self.uid);
        // SAFETY: the closure runs between fork and exec and calls only setgroups, setgid and
        // setuid, which are async-signal-safe; `groups` was allocated before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    fn from_sudo() -> anyhow::Result<Option<Self>> {
        let (Some(uid), Some(gid)) = (std::env::var_os("SUDO_UID"), std::env::var_os("SUDO_GID"))
        else {
            return Ok(None);
        };
        let parse = |value: &std::ffi::OsStr, name| {
            value
                .to_str()
                .and_then(|v| v.parse::<u32>().ok())
                .with_context(|| {
                    format!(
                        "{name}={} is not a number; unset it or give -Z USER",
                        value.to_string_lossy()
                    )
                })
        };
        let (uid, gid) = (parse(&uid, "SUDO_UID")?, parse(&gid, "SUDO_GID")?);
        let name = passwd_by_uid(uid).map_or_else(|| uid.to_string(), |(name, _)| name);
        Ok(Some(Self {
            groups: groups_of(&name, gid),
            name,
            uid,
            gid,
        }))
    }

    fn lookup(user: &str) -> anyhow::Result<Self> {
        let (name, uid, gid) = match user.parse::<u32>() {
            Ok(uid) => match passwd_by_uid(uid) {
                Some((name, gid)) => (name, uid, gid),
                // A bare uid without an entry: its own group id, as `setpriv` would.
                None => (user.to_owned(), uid, uid),
            },
            Err(_) => match passwd_by_name(user) {
                Some((uid, gid)) => (user.to_owned(), uid, gid),
                None => bail!(
                    "-Z {user}: no such user (not in the passwd database); give a user name \
                     or a numeric uid"
                ),
            },
        };
        Ok(Self {
            groups: groups_of(&name, gid),
            name,
            uid,
            gid,
        })
    }
}

/// (name, gid) of `uid`.
fn passwd_by_uid(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwuid_r writes into it and `buf` only, and `result`
    // points into them or is null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if result.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        Some((name, pwd.pw_gid))
    }
}

/// (uid, gid) of `name`.
fn passwd_by_name(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in passwd_by_uid.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (!result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    }
}

/// The groups `name` has at login (getgrouplist), always including `gid`.
fn groups_of(name: &str, gid: u32) -> Vec<libc::gid_t> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..4 {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` holds `count` elements; getgrouplist writes at most that many and
        // stores the number it needs in `count`.
        let found =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if found >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            return groups;
        }
        groups.resize(usize::try_from(count).unwrap_or(0).max(groups.len() * 2), 0);
    }
    vec![gid]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_name_and_by_uid() {
        let root = RunAs::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        let nobody = RunAs::lookup("65534").unwrap();
        assert_eq!(nobody.uid, 65534);
        let unnamed = RunAs::lookup("4000000").unwrap();
        assert_eq!((unnamed.uid, unnamed.gid), (4_000_000, 4_000_000));
        let error = RunAs::lookup("no-such-user-spliff")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no such user"), "{error}");
    }
}
