// Pipedrive's official Node client (`pipedrive`, its v2 API) against `ferry sandbox`'s Pipedrive
// emulator: cursor paging, the source-id custom field, one-by-one writes (Pipedrive has no batch
// or upsert endpoint), search by custom field, marketing_status, field metadata (v2 and v1 lists,
// one field, creating an enum field with options), and the errors ferry relies on; and the sales
// objects: v1 users, v2 pipelines and stages, v2 deals (filters, stage and status rules, deal
// fields, exact search), v1 deal participants and v1 notes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import axios from "axios";
import { v1, v2 } from "pipedrive";
import { startSandbox, thrown } from "./lib/sandbox.mjs";

function apis(url, token) {
  const config = new v2.Configuration({ apiKey: token, basePath: `${url}/api/v2` });
  return {
    config,
    persons: new v2.PersonsApi(config),
    orgs: new v2.OrganizationsApi(config),
    personFields: new v2.PersonFieldsApi(config),
  };
}

describe("pipedrive: pipedrive (v2)", () => {
  let sb;
  let pd;
  before(async () => {
    sb = await startSandbox("pipedrive", { records: 250 });
    pd = apis(sb.url, sb.env.PIPEDRIVE_TOKEN);
  });
  after(() => sb?.stop());

  test("users/me (v1) names the token's company: the connector's account identity", async () => {
    const config = new v1.Configuration({ apiKey: sb.env.PIPEDRIVE_TOKEN, basePath: `${sb.url}/v1` });
    const me = await new v1.UsersApi(config).getCurrentUser();
    assert.equal(me.success, true);
    assert.ok(Number.isInteger(me.data.company_id) && me.data.company_id > 0, "a numeric company_id");
    assert.equal(typeof me.data.company_name, "string");
    assert.equal(typeof me.data.company_domain, "string");
  });

  test("lists persons and organizations through next_cursor to the end, as many as were seeded", async () => {
    for (const [list, expected, limit] of [
      [(p) => pd.persons.getPersons(p), sb.seeded.contacts, 100],
      [(p) => pd.orgs.getOrganizations(p), sb.seeded.companies, 20],
    ]) {
      const ids = new Set();
      let cursor;
      let pages = 0;
      do {
        const res = await list({ limit, cursor });
        assert.equal(res.success, true);
        pages += 1;
        for (const r of res.data) {
          assert.equal(typeof r.id, "number");
          assert.ok(!Number.isNaN(Date.parse(r.add_time)), "RFC 3339 add_time");
          ids.add(r.id);
        }
        cursor = res.additional_data?.next_cursor ?? undefined;
      } while (cursor);
      assert.equal(ids.size, expected);
      assert.ok(pages > 1);
    }
  });

  test("consent: seeded opt-outs read as marketing_status unsubscribed, never subscribed", async () => {
    const statuses = new Map();
    let cursor;
    do {
      const res = await pd.persons.getPersons({ limit: 500, cursor, include_fields: "marketing_status" });
      for (const p of res.data) statuses.set(p.marketing_status, (statuses.get(p.marketing_status) ?? 0) + 1);
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    assert.ok(statuses.get("unsubscribed") > 0);
    assert.equal(statuses.get("subscribed"), undefined);
    for (const s of statuses.keys()) assert.ok(["no_consent", "unsubscribed"].includes(s), s);
  });

  test("the source-id field, writes with per-record results, search by it, and read back", async () => {
    const field = await pd.personFields.addPersonField({
      AddPersonFieldRequest: { field_name: "Ferry source id", field_type: "varchar" },
    });
    assert.equal(field.success, true);
    const key = field.data.field_code;
    assert.match(key, /^[0-9a-f]{40}$/);
    // The connector's `prepare` finds it by name through the cursor-paged fields list.
    const listed = [];
    let fieldCursor;
    do {
      const page = await pd.personFields.getPersonFields({ limit: 10, cursor: fieldCursor });
      listed.push(...page.data);
      fieldCursor = page.additional_data?.next_cursor ?? undefined;
    } while (fieldCursor);
    const mine = listed.filter((f) => f.field_name === "Ferry source id");
    assert.equal(mine.length, 1);
    assert.equal(mine[0].field_code, key);
    assert.equal(mine[0].field_type, "varchar");
    assert.equal(mine[0].is_custom_field, true);

    const org = await pd.orgs.addOrganization({ AddOrganizationRequest: { name: "Sdk Co" } });
    assert.equal(org.success, true);

    // No batch endpoint: ferry sends records concurrently and keeps one outcome per record.
    const inputs = [
      { name: "Ada Lovelace", emails: [{ value: "ada@sdk.example.com", primary: true, label: "work" }], org_id: org.data.id, marketing_status: "unsubscribed", custom_fields: { [key]: "sdk-1" } },
      { emails: [{ value: "nameless@sdk.example.com", primary: true }], custom_fields: { [key]: "sdk-2" } },
      { name: "Grace Hopper", emails: [{ value: "grace@sdk.example.com", primary: true }], custom_fields: { [key]: "sdk-3" } },
    ];
    const outcomes = await Promise.allSettled(inputs.map((p) => pd.persons.addPerson({ AddPersonRequest: p })));
    assert.equal(outcomes[0].status, "fulfilled");
    assert.equal(outcomes[1].status, "rejected");
    assert.equal(outcomes[1].reason.success, false);
    assert.equal(outcomes[2].status, "fulfilled");
    const ada = outcomes[0].value.data;
    assert.equal(ada.org_id, org.data.id);
    assert.equal(ada.custom_fields[key], "sdk-1");

    // Find by source id the way the connector does: exact custom-field search, then confirm.
    const found = await pd.persons.searchPersons({ term: "sdk-1", fields: "custom_fields", exact_match: true });
    assert.equal(found.success, true);
    const hits = found.data.items.map((i) => i.item.id);
    assert.deepEqual(hits, [ada.id]);
    const confirmed = await pd.persons.getPersons({ ids: hits.join(","), custom_fields: key });
    assert.equal(confirmed.data[0].custom_fields[key], "sdk-1");

    // PATCH updates in place; the opt-out survives and reads back.
    const updated = await pd.persons.updatePerson({ id: ada.id, UpdatePersonRequest: { job_title: undefined, name: "Ada King" } });
    assert.equal(updated.data.name, "Ada King");
    const back = await pd.persons.getPerson({ id: ada.id, include_fields: "marketing_status", custom_fields: key });
    assert.equal(back.data.marketing_status, "unsubscribed");
    assert.equal(back.data.custom_fields[key], "sdk-1");
    assert.equal(back.data.emails[0].value, "ada@sdk.example.com");

    // A person created without an opt-out is not "subscribed": no consent is invented.
    const grace = await pd.persons.getPerson({ id: outcomes[2].value.data.id, include_fields: "marketing_status" });
    assert.equal(grace.data.marketing_status, "no_consent");
  });

  test("field metadata: seeded custom fields under 40-hex keys with option ids, v2 and v1; an enum field created with options takes them", async () => {
    const orgFields = new v2.OrganizationFieldsApi(pd.config);
    const all = [];
    let cursor;
    do {
      const res = await orgFields.getOrganizationFields({ limit: 500, cursor });
      assert.equal(res.success, true);
      all.push(...res.data);
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    const byName = (list, name) => list.find((f) => f.field_name === name);
    const [region, seats, tier] = ["Region", "Seats", "Tier"].map((n) => byName(all, n));
    assert.deepEqual([region.field_type, seats.field_type, tier.field_type], ["varchar", "double", "enum"]);
    for (const f of [region, seats, tier]) {
      assert.equal(f.is_custom_field, true);
      assert.match(f.field_code, /^[0-9a-f]{40}$/);
    }
    assert.equal(region.options, null);
    assert.deepEqual(tier.options.map((o) => o.label), ["Gold", "Silver", "Bronze"]);
    assert.ok(tier.options.every((o) => Number.isInteger(o.id)), "custom option ids are numbers");
    assert.equal(byName(all, "Name").is_custom_field, false);
    const one = await orgFields.getOrganizationField({ field_code: tier.field_code });
    assert.deepEqual(one.data, tier);

    // Seeded organizations hold the Tier as an option id and Seats as a number.
    const orgs = await pd.orgs.getOrganizations({ limit: 100, custom_fields: `${tier.field_code},${seats.field_code}` });
    const ids = new Set(tier.options.map((o) => o.id));
    const tiers = orgs.data.map((o) => o.custom_fields[tier.field_code]).filter((v) => v !== null);
    assert.ok(tiers.length > 0 && tiers.every((v) => ids.has(v)), "tiers are option ids");
    assert.ok(orgs.data.some((o) => typeof o.custom_fields[seats.field_code] === "number"));
    assert.equal(Object.keys(orgs.data[0].custom_fields).length, 2, "only the fields asked for");

    // v1 lists the same keys, with the same options.
    const v1config = new v1.Configuration({ apiKey: sb.env.PIPEDRIVE_TOKEN, basePath: `${sb.url}/v1` });
    const legacy = await new v1.OrganizationFieldsApi(v1config).getOrganizationFields({ limit: 500 });
    const v1tier = legacy.data.find((f) => f.name === "Tier");
    assert.equal(v1tier.key, tier.field_code);
    assert.deepEqual(v1tier.options, tier.options);

    const persons = await pd.personFields.getPersonFields({ limit: 500 });
    assert.equal(byName(persons.data, "Favourite Colour").field_type, "varchar");
    assert.equal(byName(persons.data, "Loyalty Points").field_type, "double");

    // Create an enum field with options; a record takes an option id, and refuses another.
    const created = await pd.personFields.addPersonField({
      AddPersonFieldRequest: { field_name: "Plan", field_type: "enum", options: [{ label: "Free" }, { label: "Pro" }] },
    });
    assert.equal(created.success, true);
    const code = created.data.field_code;
    assert.match(code, /^[0-9a-f]{40}$/);
    const pro = created.data.options.find((o) => o.label === "Pro");
    const person = await pd.persons.addPerson({ AddPersonRequest: { name: "Plan Person", custom_fields: { [code]: pro.id } } });
    assert.equal(person.data.custom_fields[code], pro.id);
    const bad = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", custom_fields: { [code]: 999999 } } }));
    assert.equal(bad.success, false);
    assert.equal(bad.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const listed = await pd.personFields.getPersonFields({ limit: 500 });
    assert.deepEqual(byName(listed.data, "Plan").options, created.data.options);
  });

  test("a bad token is rejected with Pipedrive's 401 envelope", async () => {
    const bad = apis(sb.url, "not-the-token");
    const e = await thrown(() => bad.persons.getPersons({ limit: 1 }));
    assert.equal(e.success, false);
    assert.equal(e.errorCode, 401);
    assert.equal(e.error, "unauthorized access");
  });

  test("an invalid record is rejected with Pipedrive's 400 validation envelope", async () => {
    const e = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", org_id: 999999 } }));
    assert.equal(e.success, false);
    assert.equal(typeof e.error, "string");
    assert.equal(e.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const bad = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", marketing_status: "maybe" } }));
    assert.equal(bad.success, false);
  });

  test("the burst window is a 429 with x-ratelimit-* headers", async () => {
    // The SDK's interceptor hands back only the body; its functional API, given a plain axios,
    // keeps the response so the headers can be checked.
    const fp = v2.PersonsApiFp(pd.config);
    const send = async () => {
      const request = await fp.getPersons({ limit: 1 });
      return request(axios.create(), pd.config.basePath).then(
        (r) => r,
        (e) => e.response,
      );
    };
    const answers = await Promise.all(Array.from({ length: 120 }, send));
    const limited = answers.find((r) => r.status === 429);
    assert.ok(limited, "a 429 among 120 requests in one window");
    assert.equal(limited.data.success, false);
    assert.equal(limited.data.errorCode, 429);
    assert.equal(limited.headers["x-ratelimit-remaining"], "0");
    assert.ok(Number(limited.headers["x-ratelimit-limit"]) > 0);
    assert.ok(Number(limited.headers["x-ratelimit-reset"]) >= 0);
    assert.ok(limited.headers["x-daily-ratelimit-token-remaining"] !== undefined);
    // Through the SDK's class API the same 429 is its rejection with the envelope.
    const e = await thrown(() => pd.persons.getPersons({ limit: 1 }));
    assert.equal(e.errorCode, 429);
  });
});

describe("pipedrive: users, pipelines, deals and notes", () => {
  let sb;
  let pd;
  let v1c;
  before(async () => {
    sb = await startSandbox("pipedrive", { records: 200, flags: ["--limit", "pipedrive=none"] });
    pd = apis(sb.url, sb.env.PIPEDRIVE_TOKEN);
    v1c = new v1.Configuration({ apiKey: sb.env.PIPEDRIVE_TOKEN, basePath: `${sb.url}/v1` });
    pd.deals = new v2.DealsApi(pd.config);
    pd.pipelines = new v2.PipelinesApi(pd.config);
    pd.stages = new v2.StagesApi(pd.config);
    pd.dealFields = new v2.DealFieldsApi(pd.config);
    pd.users = new v1.UsersApi(v1c);
    pd.notes = new v1.NotesApi(v1c);
    pd.v1deals = new v1.DealsApi(v1c);
  });
  after(() => sb?.stop());

  const allDeals = async (params = {}) => {
    const out = [];
    let cursor;
    do {
      const res = await pd.deals.getDeals({ limit: 500, ...params, cursor });
      assert.equal(res.success, true);
      out.push(...res.data);
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    return out;
  };

  test("users (v1): all, one, found by email, the current one; owners are users of this account", async () => {
    const users = await pd.users.getUsers();
    assert.equal(users.success, true);
    assert.ok(users.data.length >= 5);
    for (const u of users.data) {
      assert.ok(Number.isInteger(u.id));
      assert.match(u.email, /@/);
      assert.equal(typeof u.active_flag, "boolean");
    }
    const me = await pd.users.getCurrentUser();
    assert.equal(me.data.is_you, true);
    assert.ok(users.data.some((u) => u.id === me.data.id));
    const ben = users.data.find((u) => u.email === "ben.okafor@ferry-demo.example");
    const one = await pd.users.getUser({ id: ben.id });
    assert.equal(one.data.name, "Ben Okafor");
    const found = await pd.users.findUsersByName({ term: "ben.okafor", search_by_email: 1 });
    assert.deepEqual(found.data.map((u) => u.id), [ben.id]);
    const missing = await thrown(() => pd.users.getUser({ id: 1 }));
    assert.equal(missing.success, false);
    // Seeded persons, organizations and deals are owned by users of this account.
    const ids = new Set(users.data.map((u) => u.id));
    const persons = await pd.persons.getPersons({ limit: 100 });
    assert.ok(persons.data.every((p) => ids.has(p.owner_id)));
    const owners = new Set(persons.data.map((p) => p.owner_id));
    assert.ok(owners.size > 1, "seeded owners differ");
    const bad = await thrown(() => pd.orgs.addOrganization({ AddOrganizationRequest: { name: "X", owner_id: 424242 } }));
    assert.equal(bad.code, "ERR_SCHEMA_VALIDATION_FAILED");
  });

  test("pipelines and stages (v2) page by cursor; every stage holds seeded deals, won and lost are statuses", async () => {
    const pipes = await pd.pipelines.getPipelines({ limit: 1 });
    assert.equal(pipes.data.length, 1);
    const rest = await pd.pipelines.getPipelines({ cursor: pipes.additional_data.next_cursor });
    const pipelines = [...pipes.data, ...rest.data];
    assert.deepEqual(pipelines.map((p) => p.name), ["Pipeline", "Renewals"]);
    assert.equal(rest.additional_data.next_cursor, null);
    const stages = await pd.stages.getStages({ pipeline_id: pipelines[0].id });
    assert.deepEqual(stages.data.map((s) => s.order_nr), stages.data.map((_, i) => i + 1));
    assert.ok(stages.data.every((s) => s.pipeline_id === pipelines[0].id && s.is_deleted === false));
    assert.ok(stages.data.every((s) => typeof s.deal_probability === "number"));
    const deals = await allDeals();
    assert.ok(deals.length > 0);
    const all = await pd.stages.getStages({ limit: 500 });
    for (const s of all.data) assert.ok(deals.some((d) => d.stage_id === s.id), s.name);
    const won = await allDeals({ status: "won" });
    const lost = await allDeals({ status: "lost" });
    assert.ok(won.length > 0 && lost.length > 0);
    assert.ok(won.every((d) => d.status === "won" && d.won_time && d.close_time));
    assert.ok(lost.every((d) => d.status === "lost" && d.lost_time));
    const inStage = await allDeals({ stage_id: won[0].stage_id, status: "won" });
    assert.ok(inStage.every((d) => d.stage_id === won[0].stage_id));
  });

  test("deals (v2): create, read, update, the source-id field and exact search, participants, delete", async () => {
    const field = await pd.dealFields.addDealField({
      AddDealFieldRequest: { field_name: "Ferry source id", field_type: "varchar" },
    });
    const key = field.data.field_code;
    assert.match(key, /^[0-9a-f]{40}$/);
    const [pipeline] = (await pd.pipelines.getPipelines()).data;
    const stages = (await pd.stages.getStages({ pipeline_id: pipeline.id })).data;
    const person = await pd.persons.addPerson({ AddPersonRequest: { name: "Deal Person" } });
    const org = await pd.orgs.addOrganization({ AddOrganizationRequest: { name: "Deal Org" } });
    const created = await pd.deals.addDeal({
      AddDealRequest: {
        title: "SDK deal – ünïcode",
        value: 4200.5,
        currency: "EUR",
        stage_id: stages[1].id,
        person_id: person.data.id,
        org_id: org.data.id,
        expected_close_date: "2027-03-31",
        custom_fields: { [key]: "sdk-deal-1" },
      },
    });
    assert.equal(created.success, true);
    const d = created.data;
    assert.equal(d.pipeline_id, pipeline.id, "the stage sets the pipeline");
    assert.deepEqual([d.status, d.value, d.currency, d.expected_close_date], ["open", 4200.5, "EUR", "2027-03-31"]);
    assert.equal(d.custom_fields[key], "sdk-deal-1");
    const found = await pd.deals.searchDeals({ term: "sdk-deal-1", fields: "custom_fields", exact_match: true });
    assert.deepEqual(found.data.items.map((i) => i.item.id), [d.id]);
    const won = await pd.deals.updateDeal({ id: d.id, UpdateDealRequest: { status: "won", won_time: "2027-03-01T12:00:00Z" } });
    assert.equal(won.data.status, "won");
    assert.equal(won.data.close_time, "2027-03-01T12:00:00Z");
    const read = await pd.deals.getDeal({ id: d.id });
    assert.equal(read.data.won_time, "2027-03-01T12:00:00Z");
    const mine = await allDeals({ person_id: person.data.id });
    assert.deepEqual(mine.map((x) => x.id), [d.id]);
    // More people through v1 participants; the deal's person takes part already.
    const other = await pd.persons.addPerson({ AddPersonRequest: { name: "Second Person" } });
    const added = await pd.v1deals.addDealParticipant({ id: d.id, AddDealParticipantRequest: { person_id: other.data.id } });
    assert.equal(added.success, true);
    const parts = await pd.v1deals.getDealParticipants({ id: d.id });
    assert.deepEqual(parts.data.map((p) => p.person.id).sort(), [person.data.id, other.data.id].sort());
    const noTitle = await thrown(() => pd.deals.addDeal({ AddDealRequest: { value: 1 } }));
    assert.equal(noTitle.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const badStage = await thrown(() => pd.deals.addDeal({ AddDealRequest: { title: "x", stage_id: 1 } }));
    assert.equal(badStage.success, false);
    const gone = await pd.deals.deleteDeal({ id: d.id });
    assert.equal(gone.data.id, d.id);
    const missing = await thrown(() => pd.deals.getDeal({ id: d.id }));
    assert.equal(missing.success, false);
  });

  test("notes (v1): HTML on a deal, a person and an organization at once, offset paging, update, delete, errors", async () => {
    const listed = [];
    let start = 0;
    for (;;) {
      const page = await pd.notes.getNotes({ start, limit: 100 });
      assert.equal(page.success, true);
      listed.push(...page.data);
      const p = page.additional_data.pagination;
      if (!p.more_items_in_collection) break;
      start = p.next_start;
    }
    assert.ok(listed.length > 0);
    assert.ok(listed.some((n) => [n.deal_id, n.person_id, n.org_id].filter((x) => x !== null).length === 3));
    assert.ok(listed.every((n) => /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(n.add_time)));
    const [deal] = await allDeals({ status: "open" });
    const added = await pd.notes.addNote({
      AddNoteRequest: {
        content: "<p>Réunion &amp; démo</p><br>見積書",
        deal_id: deal.id,
        person_id: deal.person_id ?? undefined,
        org_id: deal.org_id ?? undefined,
        add_time: "2024-03-01 09:30:00",
      },
    });
    assert.equal(added.success, true);
    const n = added.data;
    assert.equal(n.content, "<p>Réunion &amp; démo</p><br>見積書");
    assert.equal(n.add_time, "2024-03-01 09:30:00");
    assert.equal(n.deal_id, deal.id);
    const onDeal = await pd.notes.getNotes({ deal_id: deal.id });
    assert.ok(onDeal.data.some((x) => x.id === n.id));
    const updated = await pd.notes.updateNote({ id: n.id, NoteRequest: { content: "<b>edited</b>" } });
    assert.equal(updated.data.content, "<b>edited</b>");
    const one = await pd.notes.getNote({ id: n.id });
    assert.equal(one.data.add_time, "2024-03-01 09:30:00");
    const orphan = await thrown(() => pd.notes.addNote({ AddNoteRequest: { content: "nowhere" } }));
    assert.equal(orphan.success, false);
    const empty = await thrown(() => pd.notes.addNote({ AddNoteRequest: { content: "", deal_id: deal.id } }));
    assert.equal(empty.success, false);
    const deleted = await pd.notes.deleteNote({ id: n.id });
    assert.equal(deleted.data, true);
    const missing = await thrown(() => pd.notes.getNote({ id: n.id }));
    assert.equal(missing.success, false);
  });
});

describe("pipedrive: injected 429s (ferry sandbox --throttle)", () => {
  test("an injected 429 carries Pipedrive's body", async () => {
    const sb = await startSandbox("pipedrive", { records: 10, flags: ["--throttle", "pipedrive=2", "--retry-after", "1"] });
    try {
      const pd = apis(sb.url, sb.env.PIPEDRIVE_TOKEN);
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => pd.persons.getPersons({ limit: 5 })));
      const rejected = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      assert.equal(rejected.length, 2);
      for (const e of rejected) {
        assert.equal(e.success, false);
        assert.equal(e.errorCode, 429);
      }
    } finally {
      await sb.stop();
    }
  });
});
