#!/usr/bin/env bash
# Generates throwaway test certificates into DIR (default: a fresh temporary directory) and prints
# DIR. Nothing here protects anything: the keys are made for the tests and thrown away.
#   ca.pem / ca.key            a test CA (basicConstraints CA:TRUE, keyUsage keyCertSign)
#   server.pem / server.key    RSA 2048, CN localhost, SAN localhost + 127.0.0.1, signed by the CA
#   ecdsa.pem / ecdsa.key      ECDSA P-256 for the SNI name ecdsa.test, signed by the CA
#   client.pem / client.key    a client certificate signed by the CA (mutual TLS)
#   other.key                  an RSA key that matches no certificate
#   expired.pem / expired.key  a certificate that expired
set -euo pipefail
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"
cd "$dir"
q() { openssl "$@" >/dev/null 2>&1; }
q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=socketio-server test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
sign() {  # name subject san [keyalg]
  local name="$1" subj="$2" san="$3" alg="${4:-rsa}"
  if [ "$alg" = ec ]; then q ecparam -name prime256v1 -genkey -noout -out "$name.key"; else q genrsa -out "$name.key" 2048; fi
  q req -new -key "$name.key" -out "$name.csr" -subj "$subj"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' \
    "$san" "${5:-serverAuth}" > "$name.ext"
  q x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" -days "${6:-2}" -extfile "$name.ext"
}
sign server "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
sign ecdsa "/CN=ecdsa.test" "DNS:ecdsa.test" ec
sign client "/CN=test client" "DNS:client.test" rsa clientAuth
q genrsa -out other.key 2048
# An expired certificate: valid from 3 days ago to 1 day ago.
q genrsa -out expired.key 2048
q req -new -key expired.key -out expired.csr -subj "/CN=localhost"
q x509 -req -in expired.csr -signkey expired.key -out expired.pem -not_before "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" \
  -not_after "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" 2>/dev/null \
  || q x509 -req -in expired.csr -signkey expired.key -out expired.pem -days -1
echo "$dir"
