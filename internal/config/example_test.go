package config_test

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/beaver-raft/beaver-raft/internal/config"
)

func ExampleResolve() {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	c := config.Default()
	config.BindFlags(fs, &c) // --config and one flag per key
	if err := fs.Parse([]string{"--workers", "16", "--auth-token", "t0k3n", "--listen", "0.0.0.0:7070"}); err != nil {
		panic(err)
	}
	cfg, err := config.Resolve(fs) // defaults, then --config's file, then the flags set, then Validate
	fmt.Println(cfg.Workers, cfg.Listen, cfg.Auth.Tokens, cfg.Snapshot.Interval, err)

	fs = pflag.NewFlagSet("run", pflag.ContinueOnError)
	c = config.Default()
	config.BindFlags(fs, &c)
	_ = fs.Parse([]string{"--listen", "0.0.0.0:7070", "--workers", "0"})
	_, err = config.Resolve(fs)
	fmt.Println(err)
	// Output:
	// 16 0.0.0.0:7070 [t0k3n] 5m <nil>
	// workers: must be >= 1, got 0
	// auth.tokens: at least one token is required because listen (0.0.0.0:7070) is not a loopback address: set auth.tokens (--auth-token), or listen on 127.0.0.1
}

func ExampleParseByteSize() {
	for _, s := range []string{"64MiB", "10MB", "1000", "1.5GiB"} {
		b, err := config.ParseByteSize(s)
		fmt.Println(int64(b), b, err)
	}
	// Output:
	// 67108864 64MiB <nil>
	// 10000000 10MB <nil>
	// 1000 1KB <nil>
	// 0 0 invalid size "1.5GiB": want a whole number of bytes with an optional unit, like 64MiB
}
