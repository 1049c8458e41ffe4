from twisted.application.service import ServiceMaker

skydns = ServiceMaker(
    "SkyDNS", "skydns.tap", "Service discovery over DNS, replicated with Raft.", "skydns"
)
