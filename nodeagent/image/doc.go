// Package image is the node agent's image store: it pulls images from
// registries (or imports them from files, for air-gapped nodes), unpacks
// each layer once into a directory of its own, and mounts a container's
// root file system as an overlay of those directories.
//
// The store lives in one directory and survives restarts of the agent:
//
//	root/refs/<sha256 of ref>.json  what a reference resolved to: its digest,
//	                                config and layer diff ids
//	root/layers/<diff id hex>/      one unpacked layer, in overlayfs form
//	                                (whiteouts are 0:0 character devices,
//	                                opaque directories carry
//	                                trusted.overlay.opaque=y)
//	root/tmp/                       layers being unpacked and records being
//	                                written; renamed into place when complete
//
// A layer directory or a ref record exists only once it is complete, so a
// crash never leaves a half-unpacked layer in use. Blobs are not kept.
//
// Ensure asks a registry only as its PullPolicy says (IfNotPresent,
// Always, Never, as Kubernetes'), with the credentials of a Keyring filled
// from docker config files (imagePullSecrets); images of ReservedRegistry,
// skiff.local, are only ever imported, never pulled.
//
// Typical use by the agent, for each container:
//
//	var keyring image.Keyring
//	err := keyring.AddDockerConfigJSON(secret.Data[".dockerconfigjson"])
//	img, err := store.Ensure(ctx, "busybox", image.PullOptions{Policy: image.Always, Keyring: &keyring})
//	uid, gid, err := image.User(img.Layers, img.Config.User)
//	err = image.Mount(img.Layers, containerDir)    // containerDir/rootfs
//	...
//	err = image.Unmount(containerDir)
//
// Unpacking (ownership, device nodes, whiteouts) and mounting need root.
package image
