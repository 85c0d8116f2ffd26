package etcdsnapshot

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"
)

// openBackend opens an etcd database file (which no one else has open).
func openBackend(path string) (be backend.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", path, r)
		}
	}()
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return backend.NewDefaultBackend(zap.NewNop(), path, backend.WithTimeout(5*time.Second)), nil
}

// scanDB reads a database's latest revision and counts the keys that
// exist at it by resource.
func scanDB(path, prefix string) (rev int64, objects map[string]int, err error) {
	be, err := openBackend(path)
	if err != nil {
		return 0, nil, err
	}
	defer be.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", path, r)
		}
	}()
	live := map[string]bool{}
	tx := be.ReadTx()
	tx.RLock()
	err = tx.UnsafeForEach(schema.Key, func(k, v []byte) error {
		r := mvcc.BytesToRev(k)
		rev = max(rev, r.Main)
		key, ok := kvKey(v)
		if !ok {
			return nil // a revision bump's empty entry
		}
		if mvcc.IsTombstone(k) {
			delete(live, string(key))
		} else {
			live[string(key)] = true
		}
		return nil
	})
	tx.RUnlock()
	if err != nil {
		return 0, nil, err
	}
	objects = map[string]int{}
	for k := range live {
		objects[resourceOf(k, prefix)]++
	}
	return rev, objects, nil
}

// kvKey is field 1 (key) of an mvccpb.KeyValue in protobuf wire format.
func kvKey(v []byte) ([]byte, bool) {
	for len(v) > 0 {
		tag, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, false
		}
		v = v[n:]
		switch tag & 7 {
		case 0: // varint
			if _, n = binary.Uvarint(v); n <= 0 {
				return nil, false
			}
			v = v[n:]
		case 1: // 64-bit
			if len(v) < 8 {
				return nil, false
			}
			v = v[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(v)
			if n <= 0 || uint64(len(v)-n) < l {
				return nil, false
			}
			if tag>>3 == 1 {
				return v[n : n+int(l)], true
			}
			v = v[n+int(l):]
		case 5: // 32-bit
			if len(v) < 4 {
				return nil, false
			}
			v = v[4:]
		default:
			return nil, false
		}
	}
	return nil, false
}

// resourceOf is the resource a key stores: prefix/secrets/ns/name is
// "secrets", prefix/skiff.dev/workloads/ns/name "skiff.dev/workloads".
func resourceOf(key, prefix string) string {
	rest, ok := strings.CutPrefix(key, strings.TrimSuffix(prefix, "/")+"/")
	if !ok || prefix == "" {
		return "other"
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) >= 3 && strings.Contains(parts[0], ".") {
		return parts[0] + "/" + parts[1]
	}
	if len(parts) < 2 {
		return "other"
	}
	return parts[0]
}
