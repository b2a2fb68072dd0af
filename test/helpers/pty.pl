#!/usr/bin/perl
# Runs a command on a new pseudo-terminal of the host, as a terminal emulator (or
# script(1)) does: the command is a session leader with the pty slave as its
# controlling terminal on 0-2. This process relays its stdin to the master and the
# master to its stdout; "winsize ROWS COLS" lines on fd 3 resize the terminal (the
# kernel then sends SIGWINCH to its foreground process group). It first writes one line
# to stderr, "pty PATH DEV INO" (the slave's path, device and inode numbers), and exits
# with the command's status (128+N for signal N).
# Usage: pty.pl ROWS COLS -- COMMAND [ARG...]
use strict;
use warnings;

use constant { TIOCSWINSZ => 0x5414, TIOCSPTLCK => 0x40045431, TIOCGPTN => 0x80045430, TIOCSCTTY => 0x540E };

my ($rows, $cols, $dashes, @command) = @ARGV;
die "usage: pty.pl ROWS COLS -- COMMAND...\n" unless defined $dashes && $dashes eq '--' && @command;
# Before anything else opens a descriptor: fd 3 is the control pipe only if we were given one.
my $control;
open($control, '<&=', 3) or undef $control;
open(my $master, '+<', '/dev/ptmx') or die "pty.pl: /dev/ptmx: $!\n";
my $unlock = pack('i', 0);
ioctl($master, TIOCSPTLCK, $unlock) or die "pty.pl: unlockpt: $!\n";
my $number = pack('I', 0);
ioctl($master, TIOCGPTN, $number) or die "pty.pl: ptsname: $!\n";
my $slave_path = '/dev/pts/' . unpack('I', $number);
resize($rows, $cols);
my @st = stat $slave_path or die "pty.pl: stat $slave_path: $!\n";
{
    local $| = 1;
    print STDERR "pty $slave_path $st[0] $st[1]\n";
}

my $child = fork() // die "pty.pl: fork: $!\n";
if ($child == 0) {
    close $master;
    require POSIX;
    POSIX::setsid() // die "pty.pl: setsid: $!\n";
    # A session leader opening a terminal without O_NOCTTY makes it its controlling one.
    open(my $slave, '+<', $slave_path) or die "pty.pl: $slave_path: $!\n";
    ioctl($slave, TIOCSCTTY, 0);
    POSIX::dup2(fileno $slave, $_) for 0, 1, 2;
    close $slave;
    exec { $command[0] } @command;
    die "pty.pl: cannot run $command[0]: $!\n";
}

sub resize {
    my $size = pack('S4', $_[0], $_[1], 0, 0);
    ioctl($master, TIOCSWINSZ, $size) or die "pty.pl: resize: $!\n";
}

my ($stdin_open, $control_open, $control_buffer, $status) = (1, defined $control, '');
while (1) {
    my $rin = '';
    vec($rin, fileno($master), 1) = 1;
    vec($rin, 0, 1) = 1 if $stdin_open;
    vec($rin, fileno($control), 1) = 1 if $control_open;
    my $ready = select(my $rout = $rin, undef, undef, 0.1);
    if ($ready > 0 && vec($rout, fileno($master), 1)) {
        my $n = sysread($master, my $data, 65536);
        last unless $n;    # EIO: no slave open any more
        syswrite STDOUT, $data;
    }
    if ($ready > 0 && $stdin_open && vec($rout, 0, 1)) {
        my $n = sysread(STDIN, my $data, 65536);
        if ($n) { syswrite $master, $data } else { $stdin_open = 0 }
    }
    if ($ready > 0 && $control_open && vec($rout, fileno($control), 1)) {
        my $n = sysread($control, $control_buffer, 4096, length $control_buffer);
        $control_open = 0 unless $n;
        resize($1, $2) while $control_buffer =~ s/^winsize ([0-9]+) ([0-9]+)\n//;
    }
    if (waitpid($child, 1) == $child) {
        $status = $?;
        drain();
        last;
    }
}
if (!defined $status) {
    waitpid($child, 0);
    $status = $?;
}
exit($status & 127 ? 128 + ($status & 127) : $status >> 8);

# After the command exited: pass on what it wrote.
sub drain {
    while (1) {
        my $rin = '';
        vec($rin, fileno($master), 1) = 1;
        last unless select(my $rout = $rin, undef, undef, 0.2) > 0;
        my $n = sysread($master, my $data, 65536);
        last unless $n;
        syswrite STDOUT, $data;
    }
}
