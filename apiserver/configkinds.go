package apiserver

import (
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Secrets and ConfigMaps: core v1, validated as Kubernetes validates them.
// Secrets are encrypted at rest (encryption.go).

var (
	secretsResource    = corev1.Resource("secrets")
	configMapsResource = corev1.Resource("configmaps")
)

// maxDataSize caps a Secret's or ConfigMap's data, as Kubernetes does.
const maxDataSize = corev1.MaxSecretSize

func secretKind() *Kind {
	return &Kind{
		GVK:    corev1.SchemeGroupVersion.WithKind("Secret"),
		Plural: "secrets", Singular: "secret",
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &corev1.Secret{} },
		NewList: func() runtime.Object { return &corev1.SecretList{} },
		Columns: []metav1.TableColumnDefinition{
			col("Type", "string", "The type of the secret."),
			col("Data", "integer", "The number of keys."),
			ageColumn,
		},
		Row: typed(func(s *corev1.Secret) []interface{} {
			return []interface{}{string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp)}
		}),
		FieldLabels: []string{"type"},
		Fields: typed(func(s *corev1.Secret) fields.Set {
			return fields.Set{"type": string(s.Type)}
		}),
		PrepareForCreate: mutate(func(s *corev1.Secret) {
			if s.Type == "" {
				s.Type = corev1.SecretTypeOpaque
			}
			mergeStringData(s)
		}),
		PrepareForUpdate: func(obj, _ runtime.Object) { mergeStringData(obj.(*corev1.Secret)) },
		Validate:         typed(validateSecret),
		ValidateUpdate:   typed2(validateSecretUpdate),
	}
}

// mergeStringData moves stringData into data, as the Kubernetes API does
// on every write: stringData is write-only and never stored.
func mergeStringData(s *corev1.Secret) {
	if len(s.StringData) == 0 {
		s.StringData = nil
		return
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validation.ValidateObjectMeta(&s.ObjectMeta, true, validation.NameIsDNSSubdomain, field.NewPath("metadata"))
	data := field.NewPath("data")
	size := 0
	for _, k := range sortedKeys(s.Data) {
		errs = append(errs, validateDataKey(data, k)...)
		size += len(s.Data[k])
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(data, "", maxDataSize))
	}
	required := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(data.Key(k), fmt.Sprintf("a secret of type %s needs it", s.Type)))
			}
		}
	}
	switch s.Type {
	case "":
		errs = append(errs, field.Required(field.NewPath("type"), ""))
	case corev1.SecretTypeServiceAccountToken:
		errs = append(errs, field.NotSupported(field.NewPath("type"), s.Type, []string{"skiff has no service accounts"}))
	case corev1.SecretTypeDockercfg:
		required(corev1.DockerConfigKey)
		errs = append(errs, validateJSONKey(s, corev1.DockerConfigKey)...)
	case corev1.SecretTypeDockerConfigJson:
		required(corev1.DockerConfigJsonKey)
		errs = append(errs, validateJSONKey(s, corev1.DockerConfigJsonKey)...)
	case corev1.SecretTypeBasicAuth:
		if len(s.Data[corev1.BasicAuthUsernameKey]) == 0 && len(s.Data[corev1.BasicAuthPasswordKey]) == 0 {
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthUsernameKey), "a basic-auth secret needs a username or a password"))
		}
	case corev1.SecretTypeSSHAuth:
		required(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		required(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	case JoinTokenSecretType:
		errs = append(errs, validateJoinTokenRecord(s)...)
	}
	return errs
}

func validateJSONKey(s *corev1.Secret, key string) field.ErrorList {
	v, ok := s.Data[key]
	if !ok || json.Valid(v) {
		return nil
	}
	// The value is a credential: the error must not quote it.
	return field.ErrorList{field.Invalid(field.NewPath("data").Key(key), "<secret contents redacted>", "is not valid JSON")}
}

func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := validation.ValidateObjectMetaUpdate(&s.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	if s.Type != old.Type {
		errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
	}
	if isImmutable(old.Immutable) {
		if !isImmutable(s.Immutable) {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !apiequality.Semantic.DeepEqual(s.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, validateSecret(s)...)
}

func configMapKind() *Kind {
	return &Kind{
		GVK:    corev1.SchemeGroupVersion.WithKind("ConfigMap"),
		Plural: "configmaps", Singular: "configmap", ShortNames: []string{"cm"},
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &corev1.ConfigMap{} },
		NewList: func() runtime.Object { return &corev1.ConfigMapList{} },
		Columns: []metav1.TableColumnDefinition{
			col("Data", "integer", "The number of keys."),
			ageColumn,
		},
		Row: typed(func(c *corev1.ConfigMap) []interface{} {
			return []interface{}{int64(len(c.Data) + len(c.BinaryData)), age(c.CreationTimestamp)}
		}),
		Validate:       typed(validateConfigMap),
		ValidateUpdate: typed2(validateConfigMapUpdate),
	}
}

func validateConfigMap(c *corev1.ConfigMap) field.ErrorList {
	errs := validation.ValidateObjectMeta(&c.ObjectMeta, true, validation.NameIsDNSSubdomain, field.NewPath("metadata"))
	size := 0
	for _, k := range sortedKeys(c.Data) {
		errs = append(errs, validateDataKey(field.NewPath("data"), k)...)
		size += len(c.Data[k])
	}
	binary := field.NewPath("binaryData")
	for _, k := range sortedKeys(c.BinaryData) {
		errs = append(errs, validateDataKey(binary, k)...)
		if _, dup := c.Data[k]; dup {
			errs = append(errs, field.Invalid(binary.Key(k), k, "duplicate of key present in data"))
		}
		size += len(c.BinaryData[k])
	}
	if size > maxDataSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxDataSize))
	}
	return errs
}

func validateConfigMapUpdate(c, old *corev1.ConfigMap) field.ErrorList {
	errs := validation.ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	if isImmutable(old.Immutable) {
		if !isImmutable(c.Immutable) {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !apiequality.Semantic.DeepEqual(c.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
		if !apiequality.Semantic.DeepEqual(c.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, validateConfigMap(c)...)
}

func validateDataKey(path *field.Path, key string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsConfigMapKey(key) {
		errs = append(errs, field.Invalid(path.Key(key), key, msg))
	}
	return errs
}

func isImmutable(b *bool) bool { return b != nil && *b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
