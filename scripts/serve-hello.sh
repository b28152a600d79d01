#!/usr/bin/env bash
# Serves examples/hello.wsgi through Apache (embedded mode) on 127.0.0.1:8000, in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

port=${PORT:-8000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/mod_wsgi-hello.XXXXXX")
mkdir -p "$dir/scripts" "$dir/htdocs" "$dir/logs"
cp examples/hello.wsgi "$dir/scripts/hello.wsgi"
chmod -R o+rX "$dir"
chmod o+x "$(dirname "$dir")"
run_as=""
[ "$(id -u)" -eq 0 ] && run_as=$'User www-data\nGroup www-data'
cat > "$dir/httpd.conf" <<CONF
ServerRoot /etc/apache2
Listen 127.0.0.1:$port
ServerName localhost
PidFile $dir/logs/httpd.pid
ErrorLog /dev/stderr
LogLevel warn wsgi:info
$run_as
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule wsgi_module $MOD_WSGI_SO
TypesConfig /etc/mime.types
<Directory />
    Require all denied
</Directory>
DocumentRoot $dir/htdocs
WSGIScriptAlias / $dir/scripts/hello.wsgi
<Directory $dir/scripts>
    Require all granted
</Directory>
CONF
echo "serving examples/hello.wsgi on http://127.0.0.1:$port/ (config: $dir/httpd.conf); Ctrl-C stops" >&2
exec /usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND
