package release

// UnitDirs are the directories, relative to the image root, whose files
// are systemd units.
var UnitDirs = []string{"usr/lib/systemd/system", "usr/local/lib/systemd/system", "etc/systemd/system", "usr/lib/systemd/user", "etc/systemd/user"}
