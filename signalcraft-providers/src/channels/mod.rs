//! Outbound channels: Slack, email, Twilio SMS/voice, webhook; one file each,
//! listed in one registry. (Filled in by the channels work.)
