#!/usr/bin/perl
# Runs tape system calls one by one on a device and prints one line per call with what the kernel
# returned, so that the traces of a real st drive and of the pseudo drive can be compared line by
# line. Perl because it is in every Debian root file system and syswrite/sysread/ioctl are exactly
# one system call each.
#
# usage: tape-ops.pl DEVICE OP...
#   open:MODE        open(2) with rw, r, w, rw-nb, r-nb (O_NONBLOCK); DEVICE is opened rw at start
#                    unless the first op is an open
#   close            close(2)
#   write:N          one write(2) of N bytes (record number K holds byte K % 251)
#   fill:N           write(2)s of N bytes until one fails: prints how many succeeded, then the error
#   read:N           one read(2) with an N-byte buffer
#   mt:OP[:COUNT]    MTIOCTOP: weof fsf bsf fsr bsr rew offl nop eom setblk load unload
#   status           MTIOCGET: file and block number and the general status bits
#   mark             from here on, status prints block numbers in the current file as "M+N", N
#                    blocks after the mark (traces of tapes of different sizes then compare equal)
# Result: "OP = RESULT" lines; RESULT is a byte count, "ok", or "-1 ERRNO_NAME". Exit status 0 unless
# the command line is wrong: a failing call is a result, not an error of this tool.
use strict;
use warnings;
use Fcntl qw(O_RDONLY O_WRONLY O_RDWR O_NONBLOCK);

my %MTOP = (
    fsf => 1, bsf => 2, fsr => 3, bsr => 4, weof => 5, rew => 6, offl => 7, nop => 8,
    eom => 12, setblk => 20, load => 30, unload => 31,
);
my %OPEN = (r => O_RDONLY, w => O_WRONLY, rw => O_RDWR);
my $MTIOCTOP = 0x40086d01;
my $MTIOCGET = 0x80306d02;
my @GSTAT = (
    [EOF => 0x80000000], [BOT => 0x40000000], [EOT => 0x20000000], [EOD => 0x08000000],
    [WR_PROT => 0x04000000], [ONLINE => 0x01000000], [DR_OPEN => 0x00040000],
);

my ($device, @ops) = @ARGV;
die "usage: tape-ops.pl DEVICE OP...\n" unless defined $device && @ops;
$| = 1;

sub errno_name {
    my ($name) = grep { $!{$_} } sort keys %!;
    return '-1 ' . ($name // ('errno ' . ($! + 0)));
}

my $fh;
my $records = 0;
my ($mark, $mark_file);

sub mtget {
    my $buf = "\0" x 48;
    ioctl($fh, $MTIOCGET, $buf) or return;
    my (undef, undef, undef, $gstat, undef, $fileno, $blkno) = unpack('q q q q q l l', $buf);
    return ($gstat, $fileno, $blkno);
}

sub do_open {
    my ($mode) = @_;
    my ($access, $nb) = $mode =~ /^(rw|r|w)(-nb)?$/ or die "tape-ops: open mode $mode: rw, r, w, rw-nb, r-nb or w-nb\n";
    undef $fh;
    sysopen($fh, $device, $OPEN{$access} | ($nb ? O_NONBLOCK : 0)) or do { undef $fh; return errno_name() };
    return 'ok';
}

sub record {
    my ($n) = @_;
    return chr($records++ % 251) x $n;
}

sub one_write {
    my ($n) = @_;
    my $w = syswrite($fh, record($n));
    return defined $w ? $w : errno_name();
}

do_open('rw') unless $ops[0] =~ /^open:/;
for my $op (@ops) {
    my $result;
    if ($op =~ /^open:(.+)$/) {
        $result = do_open($1);
    } elsif ($op eq 'close') {
        $result = close($fh) ? 'ok' : errno_name();
        undef $fh;
    } elsif ($op =~ /^write:(\d+)$/) {
        $result = one_write($1);
    } elsif ($op =~ /^fill:(\d+)$/) {
        my $ok = 0;
        while (1) {
            my $w = syswrite($fh, record($1));
            if (!defined $w) { $result = "$ok written, then " . errno_name(); last }
            if ($w != $1) { $result = "$ok written, then a short write of $w"; last }
            $ok++;
        }
    } elsif ($op =~ /^read:(\d+)$/) {
        my $buf;
        my $r = sysread($fh, $buf, $1);
        $result = defined $r ? $r : errno_name();
    } elsif ($op =~ /^mt:(\w+)(?::(\d+))?$/) {
        my $code = $MTOP{$1} // die "tape-ops: unknown mt op $1\n";
        my $arg = pack('s x2 l', $code, $2 // 1);
        $result = ioctl($fh, $MTIOCTOP, $arg) ? 'ok' : errno_name();
    } elsif ($op eq 'mark') {
        my (undef, $fileno, $blkno) = mtget() or die "tape-ops: mark: MTIOCGET failed: $!\n";
        ($mark, $mark_file) = ($blkno, $fileno);
        $result = 'ok';
    } elsif ($op eq 'status') {
        if (my ($gstat, $fileno, $blkno) = mtget()) {
            my @bits = map { $_->[0] } grep { ($gstat & $_->[1]) == $_->[1] } @GSTAT;
            $blkno = 'M+' . ($blkno - $mark) if defined $mark && $fileno == $mark_file && $blkno >= 0 && $mark >= 0;
            $result = "file=$fileno block=$blkno " . join(',', @bits);
        } else {
            $result = errno_name();
        }
    } else {
        die "tape-ops: unknown op $op\n";
    }
    print "$op = $result\n";
}
