#!/bin/sh
# Render ome-zarr-gateway.conf.template: fills in the ${OZG_*} placeholders (and nothing
# else: nginx's own $variables stay). Every value has a default; set what differs:
#
#   OZG_GATEWAYS="127.0.0.1:8001 127.0.0.1:8002" OZG_SERVER_NAME=images.example.org \
#     sh deploy/nginx/render.sh > /etc/nginx/conf.d/ome-zarr-gateway.conf
set -eu
here=$(dirname "$0")
: "${OZG_GATEWAYS:=127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8003}"
: "${OZG_PREFIX:=/zarr}"                     # must equal the gateways' server.root_path ("" for /)
: "${OZG_SERVER_NAME:=_}"
: "${OZG_HTTP_LISTEN:=127.0.0.1:8080}"       # plain HTTP, for local tools and monitoring
: "${OZG_HTTPS_LISTEN:=443}"
: "${OZG_TLS_CERT:=/etc/ssl/certs/ssl-cert-snakeoil.pem}"
: "${OZG_TLS_KEY:=/etc/ssl/private/ssl-cert-snakeoil.key}"
: "${OZG_CACHE_DIR:=/var/cache/nginx/ome-zarr-gateway}"
: "${OZG_CACHE_SIZE:=50g}"
: "${OZG_ACCESS_LOG:=/var/log/nginx/ome-zarr-gateway.access.log}"
: "${OZG_AUTH_REALM:=off}"                   # or e.g. "ome-zarr-gateway" to require basic auth
: "${OZG_HTPASSWD:=/etc/nginx/ome-zarr-gateway.htpasswd}"
: "${OZG_VIEWS:=v2|browse}"                  # the gateways' [zarr_v2] and [browse] prefixes, '|' between
OZG_UPSTREAM_SERVERS=$(for gateway in $OZG_GATEWAYS; do
  printf '    server %s max_fails=1 fail_timeout=10s;\n' "$gateway"
done)
export OZG_UPSTREAM_SERVERS OZG_PREFIX OZG_SERVER_NAME OZG_HTTP_LISTEN OZG_HTTPS_LISTEN OZG_TLS_CERT \
  OZG_TLS_KEY OZG_CACHE_DIR OZG_CACHE_SIZE OZG_ACCESS_LOG OZG_AUTH_REALM OZG_HTPASSWD OZG_VIEWS
envsubst '${OZG_UPSTREAM_SERVERS} ${OZG_PREFIX} ${OZG_SERVER_NAME} ${OZG_HTTP_LISTEN} ${OZG_HTTPS_LISTEN}
  ${OZG_TLS_CERT} ${OZG_TLS_KEY} ${OZG_CACHE_DIR} ${OZG_CACHE_SIZE} ${OZG_ACCESS_LOG} ${OZG_AUTH_REALM}
  ${OZG_HTPASSWD} ${OZG_VIEWS}' < "$here/ome-zarr-gateway.conf.template"
