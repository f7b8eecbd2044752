// Command etcd runs etcd's server. Upstream's own binary (etcd's repository root main.go, module
// go.etcd.io/etcd/v3) is exactly this call; the server module is the one the Go proxy serves.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
