package faults

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// OwnerPID returns the pid, among candidates, of the process whose socket
// is the client end of a connection accepted on listenPort from remote, or 0.
// It reads /proc/net/tcp for the socket's inode (the row whose local port is
// the remote's and whose remote port is the listener's) and then the
// candidates' /proc/PID/fd links. Only candidates are searched: scanning
// every process on a shared machine would be slow and is not needed — the
// test knows the pids of the connectd processes it started.
//
// A connection is accepted after the client's connect completed, so the
// socket is already listed; a short retry covers /proc catching up.
func OwnerPID(remote *net.TCPAddr, listenPort int, candidates []int) int {
	if remote == nil || len(candidates) == 0 {
		return 0
	}
	for attempt := 0; attempt < 5; attempt++ {
		if inode := socketInode(remote.Port, listenPort); inode != "" {
			target := "socket:[" + inode + "]"
			for _, pid := range candidates {
				if ownsSocket(pid, target) {
					return pid
				}
			}
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// socketInode finds the inode of the TCP socket with local port lport and
// remote port rport in /proc/net/tcp (loopback connections are IPv4 here).
func socketInode(lport, rport int) string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	wantL, wantR := fmt.Sprintf(":%04X", lport), fmt.Sprintf(":%04X", rport)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if strings.HasSuffix(fields[1], wantL) && strings.HasSuffix(fields[2], wantR) {
			return fields[9]
		}
	}
	return ""
}

func ownsSocket(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == target {
			return true
		}
	}
	return false
}
