//! Files the saved history is written to: readable by their owner only, written whole and
//! synced before the rename that publishes them.

use std::path::Path;

/// Writes `bytes` to a new file readable by its owner only (the state holds sealed secrets and
/// every execution's data).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // The mode above applies only to a file it creates (a leftover may be wider).
    restrict_mode(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes an existing file readable by its owner only; nothing when it does not exist.
pub(super) fn restrict_mode(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
