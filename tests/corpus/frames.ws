# WebSocket frames from a client, and what the server's frame parser must make of them.
# Format: tests/corpus/frames.py. Valid cases first, then the malformed ones with their close codes.

## a masked text frame
rfc: RFC 6455 §5.6
| text "Hello"
> text "Hello"

## a binary frame keeps every byte
rfc: RFC 6455 §5.6
| binary "\x00\xff\x80\r\n"
> binary "\x00\xff\x80\r\n"

## empty text and binary messages
rfc: RFC 6455 §5.6
| text ""
| binary ""
> text ""
> binary ""

## a 126-byte payload takes the 2-byte length
rfc: RFC 6455 §5.2
| text "a"*126
> text "a"*126

## a 65,536-byte payload takes the 8-byte length
rfc: RFC 6455 §5.2
| binary "\xfe"*65536
> binary "\xfe"*65536

## a text message in three fragments is one message
rfc: RFC 6455 §5.4
| text fin=0 "frag"
| cont fin=0 "ment"
| cont "ed"
> text "fragmented"

## empty fragments count for nothing
rfc: RFC 6455 §5.4
| binary fin=0 ""
| cont fin=0 "ab"
| cont fin=0 ""
| cont ""
> binary "ab"

## a ping between fragments comes out at once, before the message
rfc: RFC 6455 §5.4 (control frames MAY be injected in the middle of a fragmented message)
| text fin=0 "Hel"
| ping "?"
| cont "lo"
> ping "?"
> text "Hello"

## a ping with the largest payload a control frame may have
rfc: RFC 6455 §5.5
| ping "p"*125
> ping "p"*125

## an unsolicited pong is an event (and needs no answer)
rfc: RFC 6455 §5.5.3
| pong "late"
> pong "late"

## a Close frame without a code means 1005
rfc: RFC 6455 §7.1.5
| close
> close 1005 ""

## a Close frame with a code and a reason
rfc: RFC 6455 §5.5.1
| close code=1000 "bye"
> close 1000 "bye"

## codes of libraries and applications are allowed
rfc: RFC 6455 §7.4.2
| close code=3000
| close code=4999
> close 3000 ""
> close 4999 ""

## 1012-1014 are registered with IANA (RFC 6455 §11.7) and allowed
rfc: IANA WebSocket Close Code Number Registry
| close code=1014 "bad gateway"
> close 1014 "bad gateway"

## the longest close reason: 123 bytes
rfc: RFC 6455 §5.5
| close code=1001 "r"*123
> close 1001 "r"*123

## a character cut between two fragments
rfc: RFC 6455 §5.6 (text is UTF-8 as a whole message, not per frame)
| text fin=0 "\xce"
| cont fin=0 "\xba\xe1\xbd"
| cont "\xb9\xcf\x83"
> text "\xce\xba\xe1\xbd\xb9\xcf\x83"

## non-characters and specials are valid UTF-8
rfc: RFC 3629
| text "\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf"
> text "\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf"

## messages back to back
rfc: RFC 6455 §5.4
| text "one"
| binary "two"
| text "three"
> text "one"
> binary "two"
> text "three"

## a header not yet complete waits
rfc: RFC 6455 §5.2
| raw "\x81\x85\x37"
> need

## the payload not yet complete waits
rfc: RFC 6455 §5.2
| text len=10
> need

## a message of exactly the limit is allowed
limits: max_message_bytes=10
| text fin=0 "12345"
| cont "67890"
> text "1234567890"

## frames after a Close are still parsed (the session drops them)
rfc: RFC 6455 §5.5.1
| close code=1000
| text "late"
> close 1000 ""
> text "late"

# -- malformed: each must fail with the close code given --------------------------------

## RSV1 without an extension
rfc: RFC 6455 §5.2 (MUST be 0 unless an extension is negotiated)
| text rsv=4 "Hello"
> error 1002

## RSV2 without an extension
| text rsv=2 "Hello"
> error 1002

## RSV3 on a ping
| ping rsv=1 "x"
> error 1002

## reserved data opcode 3
rfc: RFC 6455 §5.2
| 3 "x"
> error 1002

## reserved data opcode 7
| 7
> error 1002

## reserved control opcode 0xB
| 11 "x"
> error 1002

## reserved control opcode 0xF
| 15
> error 1002

## a frame from a client that is not masked
rfc: RFC 6455 §5.1 (the server MUST close the connection)
| text unmasked "Hello"
> error 1002

## a fragmented ping
rfc: RFC 6455 §5.5 (control frames MUST NOT be fragmented)
| ping fin=0 "x"
> error 1002

## a ping of 126 bytes
rfc: RFC 6455 §5.5 (125 bytes or less)
| ping "p"*126
> error 1002

## a Close frame of 126 bytes (a reason of 124)
rfc: RFC 6455 §5.5
| close code=1000 "r"*124
> error 1002

## a Close frame with a 1-byte payload
rfc: RFC 6455 §5.5.1
| close "\x03"
> error 1002

## close code 0
rfc: RFC 6455 §7.4.2 (0-999 are not used)
| close code=0
> error 1002

## close code 999
| close code=999
> error 1002

## close code 1004 (reserved)
rfc: RFC 6455 §7.4.1
| close code=1004
> error 1002

## close code 1005 may not be sent
rfc: RFC 6455 §7.4.1
| close code=1005
> error 1002

## close code 1006 may not be sent
| close code=1006
> error 1002

## close code 1015 may not be sent
| close code=1015
> error 1002

## close code 1016 (reserved for this protocol)
rfc: RFC 6455 §7.4.2
| close code=1016
> error 1002

## close code 2999 (reserved for this protocol)
| close code=2999
> error 1002

## close code 5000
rfc: RFC 6455 §7.4.2 (codes end at 4999)
| close code=5000
> error 1002

## close code 65535
| close code=65535
> error 1002

## a close reason that is not UTF-8
rfc: RFC 6455 §5.5.1
| close code=1000 "\xce\xba\xed\xa0\x80"
> error 1007

## a continuation with nothing to continue
rfc: RFC 6455 §5.4
| cont "x"
> error 1002

## a continuation that ends nothing, after a whole message
| text "a"
| cont fin=0 "x"
> text "a"
> error 1002

## a new message inside a fragmented one
rfc: RFC 6455 §5.4
| text fin=0 "a"
| text "b"
> error 1002

## a binary message inside a fragmented text one
| text fin=0 "a"
| binary "b"
> error 1002

## text that is not UTF-8
rfc: RFC 6455 §8.1
| text "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
> error 1007

## text that is not UTF-8 only across fragments
rfc: RFC 6455 §8.1
| text fin=0 "\xce"
| cont "A"
> error 1007

## a text message that ends inside a character
rfc: RFC 6455 §8.1
| text fin=0 "ab"
| cont "\xe2\x82"
> error 1007

## an invalid byte fails at once, before the frame ends
rfc: RFC 6455 §8.1 (fail fast, Autobahn 6.4.3)
| text cut=15 "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"
> error 1007

## an encoded surrogate fails at its second byte, before the frame ends
rfc: RFC 3629 §4 (ED A0-BF never starts a valid sequence)
| text cut=13 "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
> error 1007

## an invalid byte in a later fragment fails before the message ends
rfc: RFC 6455 §8.1 (Autobahn 6.4.1)
| text fin=0 "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
| cont fin=0 "\xf4\x90\x80\x80"
> error 1007

## a 2-byte length for a size 1 byte could hold
rfc: RFC 6455 §5.2 (the minimal number of bytes MUST be used)
| text len16 "short"
> error 1002

## an 8-byte length for a size 2 bytes could hold
rfc: RFC 6455 §5.2
| binary len64 "b"*200
> error 1002

## an 8-byte length with its most significant bit set fails at that byte
rfc: RFC 6455 §5.2
| raw "\x82\xff\x80"
> error 1002

## an 8-byte length with its most significant bit set, arrived whole
| raw "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x37\xfa\x21\x3d"
> error 1002

## a first byte that is already wrong fails alone
| raw "\xc1"
> error 1002

## a frame over the message limit fails from its header
rfc: --websocket-max-message-bytes (1009, RFC 6455 §7.4.1)
limits: max_message_bytes=10
| text len=11
> error 1009

## fragments count together against the limit
limits: max_message_bytes=10
| binary fin=0 "123456"
| cont "78901"
> error 1009

## a huge announced length fails at once, nothing read
limits: max_message_bytes=1048576
| binary len=4294967296
> error 1009

## too many fragments
limits: max_fragments=3
| text fin=0 "a"
| cont fin=0 "b"
| cont fin=0 "c"
| cont "d"
> error 1009

## a valid message in front of a bad frame is delivered first
rfc: Autobahn 3.2 (strict: echo the message, then fail)
| text "Hello, world!"
| text rsv=2 "Hello, world!"
| ping
> text "Hello, world!"
> error 1002

## a message, then a reserved opcode
rfc: Autobahn 4.1.3
| text "Hello, world!"
| 5
| ping
> text "Hello, world!"
> error 1002
