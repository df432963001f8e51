// Two feature phones that speak Africa's Talking's webhook forms to this gateway (through
// /simulator/send/<webhook>, which adds the webhook token on the server).
// USSD: every hop posts /ussd with `text` = all inputs of the session joined by "*", as the
// network does; the session's end is reported to /ussd/events. SMS: /sms/inbound. The SMS a
// phone receives are polled from the simulator's inbox endpoint.
(function () {
  "use strict";

  const cfg = document.body.dataset;
  const POLL_MS = 1000;

  function webhook(path) {
    // The simulator's server hands the form to the webhook and adds the token itself: the
    // token never reaches this page. Same origin only (the Content-Security-Policy too).
    return cfg.send + path.replace(/^\//, "");
  }

  function randomId(prefix) {
    // crypto.getRandomValues works on plain http too, unlike crypto.randomUUID.
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function atDate(when) {
    return when.toISOString().replace("T", " ").slice(0, 19);
  }

  function plain(body) {
    // An error page is HTML; its words are enough on a phone screen.
    return body.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 300);
  }

  async function post(path, fields) {
    const response = await fetch(webhook(path), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
    return { ok: response.ok, status: response.status, text: await response.text() };
  }

  class Phone {
    constructor(el) {
      this.el = el;
      this.role = el.dataset.role;
      this.session = null;
      this.seen = "";
      this.polling = false;
      this.$ = (sel) => el.querySelector(sel);
      this.$(".dial").addEventListener("click", () => this.dial());
      this.$(".hangup").addEventListener("click", () => this.hangUp());
      this.$(".ussd-form").addEventListener("submit", (e) => { e.preventDefault(); this.answer(); });
      this.$(".sms-form").addEventListener("submit", (e) => { e.preventDefault(); this.sendSms(); });
      this.$(".number").addEventListener("change", () => this.numberChanged());
      el.querySelectorAll(".keyword").forEach((b) => b.addEventListener("click", () => {
        const box = this.$(".sms-text");
        box.value = b.dataset.word;
        box.focus();
      }));
      this.numberChanged();
    }

    number() { return this.$(".number").value.trim(); }

    numberChanged() {
      this.seen = "";
      this.$(".inbox").replaceChildren();
      this.$(".count").textContent = "";
      if (this.role === "vaccinator") {
        const option = Array.from(document.querySelectorAll("#vaccinator-numbers option"))
          .find((o) => o.value === this.number());
        this.$(".owner").textContent = option ? option.label : "not a registered vaccinator";
      }
      this.poll();
    }

    screen(text) { this.$(".ussd-screen").textContent = text; }

    waiting(open) {
      this.$(".ussd-input").disabled = !open;
      this.$(".ussd-send").disabled = !open;
      this.$(".hangup").disabled = !this.session;
      this.$(".ussd-input").value = "";
      if (open) this.$(".ussd-input").focus();
    }

    async dial() {
      if (this.session) await this.end("Incomplete", "");
      this.session = { id: randomId("ATUid_sim"), inputs: [], started: Date.now(), hops: 0,
                       last: "", phone: this.number() };
      this.screen("Calling " + cfg.ussdCode + " …");
      await this.hop();
    }

    async answer() {
      const value = this.$(".ussd-input").value.trim();
      if (!this.session || value === "") return;
      this.session.inputs.push(value);
      this.waiting(false);
      await this.hop();
    }

    state(name) {
      // Exposed on the element for the browser test and for styling.
      this.el.dataset.ussd = name;
    }

    async hop() {
      const s = this.session;
      this.state("busy");
      let reply;
      try {
        reply = await post("/ussd", { sessionId: s.id, serviceCode: cfg.ussdCode,
          phoneNumber: s.phone, networkCode: cfg.networkCode, text: s.inputs.join("*") });
      } catch (err) {
        this.screen("Connection problem: " + err.message);
        return this.end("Failed", "connection problem");
      }
      s.hops += 1;
      s.last = reply.text;
      this.el.dataset.hops = String(Number(this.el.dataset.hops || 0) + 1);
      if (!reply.ok) {
        this.screen("Gateway answered " + reply.status + ":\n" + plain(reply.text));
        return this.end("Failed", "HTTP " + reply.status);
      }
      if (reply.text.startsWith("CON ")) {
        this.screen(reply.text.slice(4));
        this.waiting(true);
        this.state("waiting");
      } else if (reply.text.startsWith("END ")) {
        this.screen(reply.text.slice(4));
        await this.end("Success", "");
      } else {
        this.screen("Invalid reply (neither CON nor END):\n" + reply.text);
        await this.end("Failed", "reply without CON/END");
      }
    }

    async hangUp() {
      if (!this.session) return;
      this.screen("Session ended.");
      await this.end("Incomplete", "");
    }

    async end(status, error) {
      // The end-of-session notice Africa's Talking posts to its own callback URL.
      const s = this.session;
      this.session = null;
      this.waiting(false);
      this.state("ended");
      if (!s) return;
      try {
        await post("/ussd/events", { date: atDate(new Date()), sessionId: s.id,
          serviceCode: cfg.ussdCode, networkCode: cfg.networkCode, phoneNumber: s.phone,
          status: status, cost: "KES 0.0000", durationInMillis: String(Date.now() - s.started),
          hopsCount: String(s.hops), input: s.inputs.join("*"), lastAppResponse: s.last,
          errorMessage: error });
      } catch (err) { /* the notice is best effort, as on the network */ }
    }

    async sendSms() {
      const box = this.$(".sms-text");
      const text = box.value.trim();
      const status = this.$(".sms-status");
      if (!text) { status.textContent = "Type a message first."; return; }
      status.textContent = "Sending…";
      try {
        const reply = await post("/sms/inbound", { from: this.number(), to: cfg.shortCode,
          text: text, date: atDate(new Date()), id: randomId("sim-"),
          networkCode: cfg.networkCode });
        if (reply.ok) {
          box.value = "";
          status.textContent = "Sent.";
        } else {
          status.textContent = "Gateway answered " + reply.status + ": " + plain(reply.text);
        }
      } catch (err) {
        status.textContent = "Connection problem: " + err.message;
      }
      this.poll();
    }

    async poll() {
      if (this.polling) return;
      this.polling = true;
      try {
        const response = await fetch(cfg.inbox + "?phone=" + encodeURIComponent(this.number()),
                                     { cache: "no-store" });
        const data = await response.json();
        if (response.ok) this.render(data.messages);
      } catch (err) { /* try again on the next tick */ } finally {
        this.polling = false;
      }
    }

    render(messages) {
      const key = messages.map((m) => m.id).join(",");
      if (key === this.seen) return;
      const fresh = new Set(messages.map((m) => m.id));
      this.el.querySelectorAll(".inbox li").forEach((li) => fresh.delete(li.dataset.id));
      this.seen = key;
      const items = messages.slice().reverse().map((m) => {
        const li = document.createElement("li");
        li.dataset.id = m.id;
        li.dataset.template = m.template;
        if (fresh.has(m.id) && this.$(".inbox").children.length) li.classList.add("new");
        const meta = document.createElement("div");
        meta.className = "meta";
        const when = m.at ? new Date(typeof m.at === "number" ? m.at * 1000 : m.at) : null;
        const parts = m.segments + (m.segments === 1 ? " part" : " parts");
        meta.textContent = [when && !isNaN(when) ? when.toLocaleTimeString() : "",
                            parts + " (" + m.encoding + ")"].filter(Boolean).join(" · ");
        const text = document.createElement("div");
        text.className = "text";
        text.textContent = m.text;
        li.append(meta, text);
        return li;
      });
      this.$(".inbox").replaceChildren(...items);
      this.$(".count").textContent = messages.length ? "(" + messages.length + ")" : "";
    }
  }

  const phones = Array.from(document.querySelectorAll(".phone"), (el) => new Phone(el));
  setInterval(() => phones.forEach((p) => p.poll()), POLL_MS);
})();
