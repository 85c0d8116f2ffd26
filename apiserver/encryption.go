package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
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
// ones still read), rewrites every Secret, then retires the old keys. A
// crash at any step leaves a configuration that reads every Secret.
func (a *atRest) rotate(ctx context.Context, secrets *REST) (Rotation, error) {
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
	n, err := rewriteAll(ctx, secrets)
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

// rewriteAll writes every object of the store back unchanged: storage
// encrypts each with the current first key (the store rewrites what it
// read with an older key even when nothing else changed).
func rewriteAll(ctx context.Context, store *REST) (int, error) {
	ctx = genericapirequest.WithNamespace(ctx, metav1.NamespaceAll)
	list, err := store.List(ctx, &metainternalversion.ListOptions{})
	if err != nil {
		return 0, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, item := range items {
		m, err := meta.Accessor(item)
		if err != nil {
			return n, err
		}
		objCtx := genericapirequest.WithNamespace(ctx, m.GetNamespace())
		_, _, err = store.Update(objCtx, m.GetName(), unchanged{}, nil, nil, false, &metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("%s/%s: %w", m.GetNamespace(), m.GetName(), err)
		}
		n++
	}
	return n, nil
}

// unchanged is an update that writes the stored object back as it is
// (whatever was written since the list: nothing is lost).
type unchanged struct{}

func (unchanged) Preconditions() *metav1.Preconditions { return nil }

func (unchanged) UpdatedObject(_ context.Context, old runtime.Object) (runtime.Object, error) {
	return old.DeepCopyObject(), nil
}

// rotateKeyHandler serves RotateKeyPath.
func (a *atRest) rotateKeyHandler(secrets *REST) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST rotates the key", http.StatusMethodNotAllowed)
			return
		}
		rot, err := a.rotate(r.Context(), secrets)
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
