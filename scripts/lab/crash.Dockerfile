# A broken release for the failure tests: exits at once.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
CMD ["/bin/sh","-c","echo broken release >&2; exit 1"]
