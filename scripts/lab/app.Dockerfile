# A tiny web app for the tests: serves its VERSION on :8080, healthy once it answers.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
ARG VERSION=v1
RUN mkdir -p /www /data && echo $VERSION > /www/index.html
VOLUME /data
HEALTHCHECK --interval=1s --timeout=1s --retries=3 CMD ["/bin/sh","-c","wget -qO- http://127.0.0.1:8080/ >/dev/null"]
# httpd as PID 1 would ignore SIGTERM and every stop would wait out the grace period;
# like a well-behaved app, this one exits on SIGTERM.
CMD ["/bin/sh","-c","trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]

