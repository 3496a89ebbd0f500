#!/usr/bin/env bash
# Regenerates the interoperability fixtures in this folder with the `openssl` CLI and the
# real `model_signing` 1.1.1 (pip install model-signing==1.1.1 pyopenssl).
# Usage: testdata/sign/make-fixtures.sh [path/to/model_signing]
# The signatures are randomised (ECDSA), so regenerating changes every .sig file.
set -euo pipefail
cd "$(dirname "$0")"
MS=${1:-../../.testbed/venv/bin/model_signing}
export LC_ALL=C.UTF-8

rm -rf model model-inside single keys certs sigs
mkdir -p model/a model/"sub dir" single keys certs sigs

# A model whose names exercise path-component ordering, spaces, non-ASCII, empty files
# and the default git ignores (.gitattributes; a .git folder cannot be committed, tests add one).
printf '1' > model/a/b.txt
printf '2' > model/a-b.txt
printf '3' > model/a.txt
printf '' > model/empty
printf 'weights' > model/"sub dir"/"poids é ü.bin"
printf 'x' > model/Zeta
printf '*.bin filter=lfs\n' > model/.gitattributes
printf 'single file model\n' > single/weights.bin

# Keys: P-256 as SEC1 (openssl ecparam), P-384 and P-521 as PKCS#8.
openssl ecparam -name prime256v1 -genkey -noout -out keys/p256.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out keys/p384.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out keys/p521.key
for k in p256 p384 p521; do openssl pkey -in keys/$k.key -pubout -out keys/$k.pub; done
# An encrypted PKCS#8 key (password "modelsign") as openssl writes it.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:modelsign -out keys/p256-encrypted.key

# Certificates: root -> intermediate -> leaf, and an unrelated root with its own leaf.
cat > certs/ext.cnf <<'CNF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf_eku_only]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = codeSigning
[leaf_no_signing]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = serverAuth
CNF
ca() { # name subject [issuer]
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out certs/$1.key
  if [ -z "${3:-}" ]; then
    openssl req -x509 -new -key certs/$1.key -subj "$2" -days 7300 -sha256 -config /dev/null \
      -extensions ca -extfile certs/ext.cnf -out certs/$1.pem 2>/dev/null ||
    openssl req -x509 -new -key certs/$1.key -subj "$2" -days 7300 -sha256 -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out certs/$1.pem
  else
    openssl req -new -key certs/$1.key -subj "$2" -out certs/$1.csr
    openssl x509 -req -in certs/$1.csr -CA certs/$3.pem -CAkey certs/$3.key -CAcreateserial -days 3650 -sha256 \
      -extfile certs/ext.cnf -extensions ${4:-ca} -out certs/$1.pem 2>/dev/null
    rm certs/$1.csr
  fi
}
ca root "/CN=modelsign test root"
ca intermediate "/CN=modelsign test intermediate" root
ca leaf "/CN=modelsign test signer" intermediate leaf
ca leaf-eku-only "/CN=modelsign eku-only signer" intermediate leaf_eku_only
ca leaf-no-signing "/CN=modelsign tls server" intermediate leaf_no_signing
ca other-root "/CN=some other root"
ca other-leaf "/CN=signer under another root" other-root leaf
# An intermediate that expired (2020-2021) before its leaf was issued: model_signing
# validates at the leaf's notBefore, so this chain must fail.
mkdir -p certs/ca-db && : > certs/ca-db/index.txt && echo 1000 > certs/ca-db/serial
cat > certs/ca.cnf <<'CNF'
[ca]
default_ca = dated
[dated]
database = certs/ca-db/index.txt
new_certs_dir = certs/ca-db
serial = certs/ca-db/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
CNF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out certs/expired-intermediate.key
openssl req -new -key certs/expired-intermediate.key -subj "/CN=modelsign expired intermediate" -out certs/expired.csr
openssl ca -batch -notext -config certs/ca.cnf -cert certs/root.pem -keyfile certs/root.key -in certs/expired.csr \
  -startdate 20200101000000Z -enddate 20210101000000Z -extfile certs/ext.cnf -extensions ca \
  -out certs/expired-intermediate.pem 2>/dev/null
ca leaf-of-expired "/CN=signer under an expired intermediate" expired-intermediate leaf
rm -rf certs/ca-db certs/ca.cnf certs/expired.csr
rm -f certs/*.srl

# Signatures made by model_signing itself.
for k in p256 p384 p521; do
  "$MS" sign key model --private_key keys/$k.key --signature sigs/$k.sig
done
"$MS" sign certificate model --private_key certs/leaf.key --signing_certificate certs/leaf.pem \
  --certificate_chain certs/intermediate.pem --signature sigs/certificate.sig
# Signature written inside the model: model.sig is recorded in ignore_paths.
cp -r model model-inside
"$MS" sign key model-inside --private_key keys/p256.key --signature model-inside/model.sig
"$MS" sign key single/weights.bin --private_key keys/p256.key --signature sigs/single.sig

# Sanity: model_signing verifies its own output.
for k in p256 p384 p521; do "$MS" verify key model --signature sigs/$k.sig --public_key keys/$k.pub; done
"$MS" verify certificate model --signature sigs/certificate.sig --certificate_chain certs/root.pem
"$MS" verify key model-inside --signature model-inside/model.sig --public_key keys/p256.pub
"$MS" verify key single/weights.bin --signature sigs/single.sig --public_key keys/p256.pub
