package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"skiff.dev/skiff/identity"
)

// EncryptionConfigFile is the API server's encryption configuration in the
// data directory (Kubernetes' EncryptionConfiguration format, 0600): the
// keys Secrets are encrypted with in etcd. Made at first start with one
// secretbox key; RotateKeyPath changes it.
const EncryptionConfigFile = "encryption-config.yaml"

// RotateKeyPath is the admin-only endpoint behind `skiff secrets
// rotate-key`: POST adds a new key, rewrites every Secret with it and
// retires the old keys.
const RotateKeyPath = "/skiff/secrets/rotate-key"

// encryptedResources are encrypted at rest; everything else is stored as is.
var encryptedResources = []schema.GroupResource{secretsResource}

// atRest is the storage transformers of every resource, read from the
// encryption configuration and swapped in place when the keys rotate (the
// stores keep the transformer they were given at start).
type atRest struct {
	path    string
	current atomic.Pointer[encryptionconfig.StaticTransformers]
	// rotating serialises rotations.
	rotating sync.Mutex
}

// newAtRest reads the encryption configuration at path, writing one with
// a fresh key first if there is none.
func newAtRest(ctx context.Context, path string) (*atRest, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		key, err := newEncryptionKey(time.Now())
		if err != nil {
			return nil, err
		}
		if err := writeEncryptionConfig(path, []apiserverv1.Key{key}); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("encryption configuration: %w", err)
	}
	a := &atRest{path: path}
	return a, a.reload(ctx)
}

// reload reads the configuration file and swaps the transformers.
func (a *atRest) reload(ctx context.Context) error {
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, a.path, false, "skiff")
	if err != nil {
		return fmt.Errorf("encryption configuration %s: %w", a.path, err)
	}
	t := encryptionconfig.StaticTransformers(cfg.Transformers)
	a.current.Store(&t)
	return nil
}

// TransformerForResource implements value.ResourceTransformers.
func (a *atRest) TransformerForResource(gr schema.GroupResource) value.Transformer {
	return resourceTransformer{rest: a, resource: gr}
}

// resourceTransformer defers to the current configuration on each call.
type resourceTransformer struct {
	rest     *atRest
	resource schema.GroupResource
}

func (t resourceTransformer) now() value.Transformer {
	return t.rest.current.Load().TransformerForResource(t.resource)
}

func (t resourceTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	return t.now().TransformFromStorage(ctx, data, dataCtx)
}

func (t resourceTransformer) TransformToStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, error) {
	return t.now().TransformToStorage(ctx, data, dataCtx)
}

func newEncryptionKey(now time.Time) (apiserverv1.Key, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return apiserverv1.Key{}, fmt.Errorf("encryption key: %w", err)
	}
	return apiserverv1.Key{
		Name:   "key-" + now.UTC().Format("20060102T150405.000000000Z"),
		Secret: base64.StdEncoding.EncodeToString(secret),
	}, nil
}

func writeEncryptionConfig(path string, keys []apiserverv1.Key) error {
	cfg := apiserverv1.EncryptionConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "EncryptionConfiguration"},
	}
	for _, gr := range encryptedResources {
		cfg.Resources = append(cfg.Resources, apiserverv1.ResourceConfiguration{
			Resources: []string{gr.String()},
			Providers: []apiserverv1.ProviderConfiguration{{Secretbox: &apiserverv1.SecretboxConfiguration{Keys: keys}}},
		})
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encryption configuration: %w", err)
	}
	if err := identity.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("encryption configuration: %w", err)
	}
	return nil
}

func readEncryptionKeys(path string) ([]apiserverv1.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption configuration: %w", err)
	}
	var cfg apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("encryption configuration %s: %w", path, err)
	}
	if len(cfg.Resources) == 0 || len(cfg.Resources[0].Providers) == 0 || cfg.Resources[0].Providers[0].Secretbox == nil {
		return nil, fmt.Errorf("encryption configuration %s: rotate-key handles the secretbox configuration skiff writes; rotate a hand-written one by hand", path)
	}
	return cfg.Resources[0].Providers[0].Secretbox.Keys, nil
}

// Rotation is what a key rotation did.
type Rotation struct {
	// Key is the name of the key Secrets are now encrypted with.
	Key string `json:"key"`
	// Rewritten is how many Secrets were rewritten with it.
	Rewritten int `json:"rewritten"`
	// Retired names the keys removed.
	Retired []string `json:"retired"`
}

// rotate adds a new first key (so that every write uses it while the old
// ones still read), rewrites every Secret that etcd holds under another
// key, then retires the old keys. A crash at any step leaves a
// configuration that reads every Secret.
func (a *atRest) rotate(ctx context.Context, secrets *REST, etcd *clientv3.Client, prefix string) (Rotation, error) {
	a.rotating.Lock()
	defer a.rotating.Unlock()
	old, err := readEncryptionKeys(a.path)
	if err != nil {
		return Rotation{}, err
	}
	key, err := newEncryptionKey(time.Now())
	if err != nil {
		return Rotation{}, err
	}
	if err := writeEncryptionConfig(a.path, append([]apiserverv1.Key{key}, old...)); err != nil {
		return Rotation{}, err
	}
	if err := a.reload(ctx); err != nil {
		return Rotation{}, err
	}
	n, err := rewriteStale(ctx, secrets, etcd, prefix, key.Name)
	if err != nil {
		return Rotation{}, fmt.Errorf("rewriting secrets with key %s (the old keys stay until a rotation completes): %w", key.Name, err)
	}
	if err := writeEncryptionConfig(a.path, []apiserverv1.Key{key}); err != nil {
		return Rotation{}, err
	}
	if err := a.reload(ctx); err != nil {
		return Rotation{}, err
	}
	r := Rotation{Key: key.Name, Rewritten: n}
	for _, k := range old {
		r.Retired = append(r.Retired, k.Name)
	}
	return r, nil
}

// rewriteStale rewrites, unchanged, every object under prefix (etcd keys
// prefix/namespace/name) that etcd holds encrypted with a key other than
// keyName, until none is left: storage encrypts each with the current
// first key. It reads etcd itself, not the watch cache, so that a write
// made with an old key just before the new one took over is seen too.
func rewriteStale(ctx context.Context, store *REST, etcd *clientv3.Client, prefix, keyName string) (int, error) {
	want := []byte("k8s:enc:secretbox:v1:" + keyName + ":")
	n := 0
	for pass := 0; pass < 5; pass++ {
		stale, err := staleKeys(ctx, etcd, prefix, want)
		if err != nil {
			return n, err
		}
		if len(stale) == 0 {
			return n, nil
		}
		for _, k := range stale {
			ns, name, _ := strings.Cut(strings.TrimPrefix(k, prefix), "/")
			if err := rewrite(ctx, store, ns, name); err != nil {
				return n, fmt.Errorf("%s/%s: %w", ns, name, err)
			}
			n++
		}
	}
	return n, errors.New("objects are still written with an old key after 5 passes")
}

// staleKeys lists, a page at a time, the keys under prefix whose values do
// not start with want.
func staleKeys(ctx context.Context, etcd *clientv3.Client, prefix string, want []byte) ([]string, error) {
	var stale []string
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := etcd.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(500))
		if err != nil {
			return nil, fmt.Errorf("read %s from etcd: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			if !bytes.HasPrefix(kv.Value, want) {
				stale = append(stale, string(kv.Key))
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return stale, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// rewrite writes an object back as storage holds it, below the registry
// (no validation: an object stored under older rules is kept as it is).
// Storage writes it again because it was read with an old key.
func rewrite(ctx context.Context, store *REST, namespace, name string) error {
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	key, err := store.KeyFunc(ctx, name)
	if err != nil {
		return err
	}
	err = store.Storage.GuaranteedUpdate(ctx, key, store.NewFunc(), false, nil,
		func(existing runtime.Object, _ storage.ResponseMeta) (runtime.Object, *uint64, error) {
			return existing, nil, nil
		}, false, nil)
	if storage.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	return err
}

// rotateKeyHandler serves RotateKeyPath. A rotation is not cut short by
// the request's end (or its timeout): it runs to the end once begun.
func (a *atRest) rotateKeyHandler(secrets *REST, etcd *clientv3.Client, prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST rotates the key", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Minute)
		defer cancel()
		rot, err := a.rotate(ctx, secrets, etcd, prefix)
		if err != nil {
			klog.ErrorS(err, "rotating the encryption key")
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		klog.InfoS("rotated the encryption key", "key", rot.Key, "rewritten", rot.Rewritten, "retired", rot.Retired)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rot)
	})
}
