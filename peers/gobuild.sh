# Sourced by the peers' build scripts: gobuild NAME CGO TAGS LDFLAGS PACKAGE builds PACKAGE
# of the module in the current directory into ${bin_dir}/NAME. Idempotent: only when the
# binary is missing or older than go.mod (FORCE=1 rebuilds anyway); into a temp file
# renamed at the end, so an interrupted build never leaves a half-written binary.
gobuild() {
	local bin="${bin_dir}/$1"
	if [[ "${FORCE:-0}" != "1" && -x "${bin}" && ! go.mod -nt "${bin}" ]]; then
		return 0
	fi
	echo "building $1 ($5) -> ${bin}" >&2
	local start=${SECONDS} tmp
	tmp="$(mktemp "${bin_dir}/.$1.XXXXXX")"
	trap 'rm -f "${tmp}"' EXIT
	CGO_ENABLED=$2 go build -mod=readonly -trimpath -tags "$3" -ldflags "$4" -o "${tmp}" "$5"
	chmod 0755 "${tmp}"
	mv -f "${tmp}" "${bin}"
	trap - EXIT
	echo "built $1 in $((SECONDS - start))s" >&2
}
