// The TARS sandbox page: #incidents, DMs, threads and modals as Slack shows them.
//
// One rule above all: nothing TARS (or a person through TARS) posts is ever parsed as HTML. Every piece of
// text becomes a text node or a property of an element built here; links only ever get http(s)/mailto URLs.
// The server adds a Content-Security-Policy as a second line of defence, but this file must not need it.
'use strict';

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);

  const S = {
    title: 'TARS sandbox',
    personas: [],
    user: null,
    channel: null, // {id, name}: #incidents
    conversation: null, // the id of the conversation on screen
    commandName: '/incident',
    commands: [], // [{name, usage, alias}]
    state: null,
    thread: null, // {channel, ts} when the thread pane is open
    users: {},
    channels: {},
    fetching: false,
    again: false,
    shownView: null, // {id, hash} of the modal on screen
    closedViews: new Set(), // submitted or cancelled here; a state fetched before that must not reopen them
    local: [], // notes only this page shows: a command TARS refused, a plain message it does not read
    dismissed: new Set(),
    messageCache: new Map(),
    completion: { items: [], index: 0 },
    history: [],
    historyIndex: -1,
  };

  // --- DOM helpers --------------------------------------------------------------------------------------

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function safeUrl(url) {
    const text = String(url || '').trim();
    if (text.startsWith('/files/')) return text;
    return /^(https?:|mailto:)/i.test(text) ? text : null;
  }

  function unescapeSlack(text) {
    // Slack's three escapes, undone for display only: the result goes into text nodes.
    return String(text).replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  }

  function plainString(obj) {
    if (!obj) return '';
    return typeof obj === 'string' ? obj : String(obj.text || '');
  }

  function fmtTime(ts) {
    if (!ts) return '';
    return new Date(Number(ts) * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function fmtFull(ts) {
    return ts ? new Date(Number(ts) * 1000).toLocaleString() : '';
  }

  // --- mrkdwn -------------------------------------------------------------------------------------------

  const EMOJI = {
    rotating_light: '🚨', white_check_mark: '✅', warning: '⚠️', x: '❌', fire: '🔥', bar_chart: '📊',
    hourglass: '⌛', hourglass_flowing_sand: '⏳', wrench: '🔧', tada: '🎉', eyes: '👀', '+1': '👍',
    thumbsup: '👍', '-1': '👎', rocket: '🚀', memo: '📝', bell: '🔔', pager: '📟', no_entry: '⛔',
    no_entry_sign: '🚫', arrow_forward: '▶️', heavy_check_mark: '✔️', information_source: 'ℹ️',
    mag: '🔍', chart_with_upwards_trend: '📈', chart_with_downwards_trend: '📉', clock1: '🕐', sos: '🆘',
  };

  const INLINE = new RegExp(
    [
      '`([^`\\n]+)`', // 1: code
      '<([^<>\\n]+)>', // 2: mention, channel, special or link
      '(?<![\\w*])\\*(?!\\s)([^*\\n]+?)(?<!\\s)\\*(?![\\w*])', // 3: *bold*
      '(?<![\\w_])_(?!\\s)([^_\\n]+?)(?<!\\s)_(?![\\w_])', // 4: _italic_
      '(?<![\\w~])~(?!\\s)([^~\\n]+?)(?<!\\s)~(?![\\w~])', // 5: ~strike~
      ':([a-z0-9_+\\-]+):', // 6: :emoji:
    ].join('|'),
    'g',
  );

  function mrkdwn(text) {
    const fragment = document.createDocumentFragment();
    // ```pre``` first: everything inside stays literal. An unclosed fence is just text.
    const parts = String(text || '').split('```');
    parts.forEach((part, index) => {
      const closed = index % 2 === 1 && index < parts.length - 1;
      if (closed) {
        fragment.append(h('pre', { class: 'mrkdwn-pre', text: unescapeSlack(part.replace(/^\n/, '')) }));
      } else {
        inline(index % 2 === 1 ? '```' + part : part, fragment);
      }
    });
    return fragment;
  }

  function inline(text, parent) {
    let last = 0;
    INLINE.lastIndex = 0;
    const matches = [...text.matchAll(INLINE)];
    for (const match of matches) {
      if (match.index > last) parent.append(document.createTextNode(unescapeSlack(text.slice(last, match.index))));
      last = match.index + match[0].length;
      const [whole, code, angle, bold, italic, strike, emoji] = match;
      if (code !== undefined) parent.append(h('code', { class: 'mrkdwn-code', text: unescapeSlack(code) }));
      else if (angle !== undefined) parent.append(angleToken(angle));
      else if (bold !== undefined) inline(bold, parent.appendChild(h('b')));
      else if (italic !== undefined) inline(italic, parent.appendChild(h('i')));
      else if (strike !== undefined) inline(strike, parent.appendChild(h('s')));
      else if (emoji !== undefined) parent.append(document.createTextNode(EMOJI[emoji] || whole));
    }
    if (last < text.length) parent.append(document.createTextNode(unescapeSlack(text.slice(last))));
  }

  function splitLabel(token) {
    const bar = token.indexOf('|');
    return bar < 0 ? [token, null] : [token.slice(0, bar), token.slice(bar + 1)];
  }

  function angleToken(token) {
    const [target, label] = splitLabel(token);
    if (target.startsWith('@')) {
      const id = target.slice(1);
      const name = label || S.users[id] || id;
      return h('span', { class: 'mention', dataset: { user: id }, title: id, text: '@' + unescapeSlack(name) });
    }
    if (target.startsWith('#')) {
      const id = target.slice(1);
      const name = label || S.channels[id] || id;
      const known = S.state && S.state.conversations.some((c) => c.id === id);
      return h('span', {
        class: 'channel-link' + (known ? ' known' : ''),
        title: id,
        text: '#' + unescapeSlack(name),
        onclick: known ? () => openConversation(id) : null,
      });
    }
    if (target.startsWith('!')) {
      const special = target.slice(1);
      if (special.startsWith('subteam^')) return h('span', { class: 'mention', text: unescapeSlack(label || '@' + special.slice(8)) });
      if (special.startsWith('date^')) return document.createTextNode(unescapeSlack(label || special));
      return h('span', { class: 'mention broadcast', text: '@' + unescapeSlack(label || special) });
    }
    const href = safeUrl(unescapeSlack(target));
    const shown = unescapeSlack(label || target);
    if (!href) return document.createTextNode(shown);
    return h('a', { href, target: '_blank', rel: 'noopener noreferrer', text: shown });
  }

  function textObject(obj) {
    if (!obj) return document.createTextNode('');
    if (typeof obj === 'string') return h('span', { class: 'mrkdwn' }, mrkdwn(obj));
    if (obj.type === 'plain_text') {
      const text = String(obj.text || '').replace(/:([a-z0-9_+\-]+):/g, (whole, name) => EMOJI[name] || whole);
      return h('span', { class: 'plain', text });
    }
    return h('span', { class: 'mrkdwn' }, mrkdwn(obj.text));
  }

  // --- Block Kit ----------------------------------------------------------------------------------------

  // ctx: {channel, ts, interactive, modal}. Message blocks are interactive (actions go to TARS); ephemeral
  // replies are not (Slack's interaction payload for them names no stored message to send).
  function renderBlocks(blocks, ctx) {
    return h('div', { class: 'blocks' }, (blocks || []).map((block) => renderBlock(block, ctx)));
  }

  function renderBlock(block, ctx) {
    switch (block.type) {
      case 'header':
        return h('div', { class: 'block block-header' }, textObject(block.text));
      case 'section':
        return sectionBlock(block, ctx);
      case 'context':
        return h(
          'div',
          { class: 'block block-context' },
          (block.elements || []).map((item) =>
            item.type === 'image' ? image(item.image_url, item.alt_text, 'context-image') : h('span', { class: 'context-item' }, textObject(item)),
          ),
        );
      case 'divider':
        return h('hr', { class: 'block block-divider' });
      case 'actions':
        return h(
          'div',
          { class: 'block block-actions', dataset: { blockId: block.block_id || '' } },
          (block.elements || []).map((element) => interactiveElement(element, ctx)),
        );
      case 'image':
        return h(
          'figure',
          { class: 'block block-image' },
          block.title && h('figcaption', {}, textObject(block.title)),
          image(block.image_url, block.alt_text, 'block-image-img'),
        );
      case 'input':
        return ctx.modal ? inputBlock(block) : h('div', { class: 'block block-unsupported', text: '[input block]' });
      case 'rich_text':
        return h('div', { class: 'block block-rich-text' }, (block.elements || []).map(richElement));
      default:
        return h('div', { class: 'block block-unsupported', text: `[${block.type} block]` });
    }
  }

  function sectionBlock(block, ctx) {
    const main = h(
      'div',
      { class: 'section-main' },
      block.text && h('div', { class: 'section-text' }, textObject(block.text)),
      block.fields &&
        h('div', { class: 'section-fields' }, block.fields.map((f) => h('div', { class: 'section-field' }, textObject(f)))),
    );
    const accessory = block.accessory
      ? h(
          'div',
          { class: 'section-accessory' },
          block.accessory.type === 'image'
            ? image(block.accessory.image_url, block.accessory.alt_text, 'accessory-image')
            : interactiveElement(block.accessory, ctx),
        )
      : null;
    return h('div', { class: 'block block-section' }, main, accessory);
  }

  function image(url, alt, className) {
    const src = safeUrl(url);
    if (!src) return h('span', { class: 'image-missing', text: `[image: ${alt || 'no preview'}]` });
    return h('img', { class: className, src, alt: alt || '', loading: 'lazy' });
  }

  function richElement(element) {
    const kids = (items) => (items || []).map(richInline);
    switch (element.type) {
      case 'rich_text_section':
        return h('div', { class: 'rich-section' }, kids(element.elements));
      case 'rich_text_preformatted':
        return h('pre', { class: 'mrkdwn-pre' }, kids(element.elements));
      case 'rich_text_quote':
        return h('blockquote', {}, kids(element.elements));
      case 'rich_text_list':
        return h(element.style === 'ordered' ? 'ol' : 'ul', {}, (element.elements || []).map((item) => h('li', {}, richElement(item))));
      default:
        return document.createTextNode('');
    }
  }

  function richInline(item) {
    const style = item.style || {};
    let node;
    if (item.type === 'text') node = document.createTextNode(item.text || '');
    else if (item.type === 'link') {
      const href = safeUrl(item.url);
      node = href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer', text: item.text || item.url }) : document.createTextNode(item.text || item.url || '');
    } else if (item.type === 'user') node = h('span', { class: 'mention', text: '@' + (S.users[item.user_id] || item.user_id) });
    else if (item.type === 'channel') node = h('span', { class: 'channel-link', text: '#' + (S.channels[item.channel_id] || item.channel_id) });
    else if (item.type === 'emoji') node = document.createTextNode(EMOJI[item.name] || `:${item.name}:`);
    else node = document.createTextNode(item.text || '');
    if (style.code) node = h('code', { class: 'mrkdwn-code' }, node);
    if (style.bold) node = h('b', {}, node);
    if (style.italic) node = h('i', {}, node);
    if (style.strike) node = h('s', {}, node);
    return node;
  }

  function optionsOf(element) {
    const groups = (element.option_groups || []).map((g) => ({ label: plainString(g.label), options: g.options || [] }));
    return { flat: [...(element.options || []), ...groups.flatMap((g) => g.options)], groups };
  }

  function interactiveElement(element, ctx) {
    const enabled = Boolean(ctx.interactive);
    const why = enabled ? null : 'Not clickable here: Slack does not send clicks on this kind of message to the app';
    if (element.type === 'button') {
      const button = h(
        'button',
        {
          type: 'button',
          class: 'bk-button' + (element.style ? ' bk-' + element.style : ''),
          dataset: { actionId: element.action_id || '', value: element.value || '' },
          title: why,
        },
        plainString(element.text),
      );
      button.disabled = !enabled;
      button.addEventListener('click', async () => {
        const href = safeUrl(element.url);
        if (href) window.open(href, '_blank', 'noopener');
        await act(element, ctx, element.value === undefined ? {} : { value: element.value }, button);
      });
      return button;
    }
    if (element.type === 'static_select') {
      const { flat, groups } = optionsOf(element);
      const initial = element.initial_option ? element.initial_option.value : '';
      const select = h('select', {
        class: 'bk-select',
        'aria-label': plainString(element.placeholder) || 'Select',
        dataset: { actionId: element.action_id || '' },
        title: why,
      });
      select.append(h('option', { value: '', disabled: true, text: plainString(element.placeholder) || 'Select an option' }));
      const addOption = (parent, option) => parent.append(h('option', { value: option.value, text: plainString(option.text) }));
      (element.options || []).forEach((option) => addOption(select, option));
      groups.forEach((group) => {
        const optgroup = h('optgroup', { label: group.label });
        group.options.forEach((option) => addOption(optgroup, option));
        select.append(optgroup);
      });
      select.value = flat.some((o) => o.value === initial) ? initial : '';
      select.disabled = !enabled;
      select.addEventListener('change', async () => {
        const chosen = select.value;
        const sent = await act(element, ctx, { selected_option: chosen }, select);
        // Until TARS updates the message, it still says what was chosen before.
        if (!sent) select.value = flat.some((o) => o.value === initial) ? initial : '';
      });
      return select;
    }
    if (element.type === 'image') return image(element.image_url, element.alt_text, 'accessory-image');
    return h('span', { class: 'bk-unsupported', text: `[${element.type}]`, title: 'Not supported in the sandbox page' });
  }

  async function act(element, ctx, payload, control) {
    if (element.confirm && !(await confirmDialog(element.confirm))) return false;
    control.disabled = true;
    control.classList.add('busy');
    try {
      await api('/api/action', {
        user: S.user,
        channel: ctx.channel,
        message_ts: ctx.ts,
        action_id: element.action_id,
        ...payload,
      });
      return true;
    } catch (error) {
      toast(error.message);
      return false;
    } finally {
      control.disabled = false;
      control.classList.remove('busy');
      refresh();
    }
  }

  function confirmDialog(confirm) {
    return new Promise((resolve) => {
      const root = $('#confirm-root');
      const onKey = (event) => {
        if (event.key === 'Escape') done(false);
      };
      const done = (answer) => {
        root.replaceChildren();
        document.removeEventListener('keydown', onKey, true);
        resolve(answer);
      };
      const ok = h(
        'button',
        { type: 'button', class: 'bk-button confirm-ok bk-' + (confirm.style || 'primary'), onclick: () => done(true) },
        plainString(confirm.confirm) || 'Yes',
      );
      const dialog = h(
        'div',
        { class: 'backdrop' },
        h(
          'div',
          { class: 'dialog confirm-dialog', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'confirm-title' },
          h('h2', { id: 'confirm-title', text: plainString(confirm.title) || 'Are you sure?' }),
          h('div', { class: 'confirm-text' }, textObject(confirm.text)),
          h(
            'div',
            { class: 'dialog-buttons' },
            h('button', { type: 'button', class: 'bk-button confirm-deny', onclick: () => done(false) }, plainString(confirm.deny) || 'Cancel'),
            ok,
          ),
        ),
      );
      root.replaceChildren(dialog);
      document.addEventListener('keydown', onKey, true);
      ok.focus();
    });
  }

  // --- messages -----------------------------------------------------------------------------------------

  function avatar(name, isBot) {
    return h('div', { class: 'avatar' + (isBot ? ' bot' : ''), 'aria-hidden': 'true', text: (name || '?').slice(0, 1).toUpperCase() });
  }

  function meta(name, isBot, ts, edited) {
    return h(
      'div',
      { class: 'message-meta' },
      h('span', { class: 'author', text: name }),
      isBot && h('span', { class: 'badge', text: 'APP' }),
      h('time', { class: 'time', title: fmtFull(ts), text: fmtTime(ts) }),
      edited && h('span', { class: 'edited', text: '(edited)' }),
    );
  }

  function filesOf(files) {
    if (!files || !files.length) return null;
    return h(
      'div',
      { class: 'files' },
      files.map((file) =>
        file.is_image
          ? h(
              'figure',
              { class: 'file file-image' },
              h('figcaption', { text: file.title }),
              h('a', { href: file.url, target: '_blank', rel: 'noopener' }, h('img', { src: file.url, alt: file.title, class: 'file-img' })),
            )
          : h('a', { class: 'file file-download', href: file.url, download: file.name, text: '📎 ' + (file.title || file.name) }),
      ),
    );
  }

  function messageNode(message, { inThread }) {
    const name = S.users[message.user] || message.user;
    const ctx = { channel: message.channel, ts: message.ts, interactive: true };
    const content = message.blocks && message.blocks.length ? renderBlocks(message.blocks, ctx) : h('div', { class: 'text' }, textObject(message.text));
    const replies =
      !inThread && message.reply_count > 0
        ? h(
            'button',
            { type: 'button', class: 'replies-link', onclick: () => openThread(message.channel, message.ts) },
            h('span', { class: 'reply-count', text: `${message.reply_count} ${message.reply_count === 1 ? 'reply' : 'replies'}` }),
            h('span', { class: 'last-reply', text: `Last reply ${fmtTime(message.latest_reply)}` }),
          )
        : null;
    return h(
      'div',
      { class: 'message', dataset: { ts: message.ts } },
      avatar(name, message.is_bot),
      h('div', { class: 'message-body' }, meta(name, message.is_bot, message.ts, message.edited), content, filesOf(message.files), replies),
    );
  }

  function ephemeralNode(reply) {
    const ctx = { channel: S.conversation, ts: null, interactive: false };
    const content = reply.blocks && reply.blocks.length ? renderBlocks(reply.blocks, ctx) : h('div', { class: 'text' }, textObject(reply.text));
    const author = reply.local ? 'Slackbot' : 'TARS';
    return h(
      'div',
      { class: 'message ephemeral' + (reply.error ? ' error' : ''), dataset: { ephemeral: reply.id } },
      avatar(author, true),
      h(
        'div',
        { class: 'message-body' },
        meta(author, !reply.local, reply.ts, false),
        content,
        h(
          'div',
          { class: 'ephemeral-footer' },
          h('span', { class: 'ephemeral-label', text: '👁 Only visible to you' }),
          h('button', { type: 'button', class: 'link-button dismiss', onclick: () => dismiss(reply.id) }, 'Dismiss'),
        ),
      ),
    );
  }

  function dismiss(id) {
    S.dismissed.add(id);
    if (S.state) render(S.state, S.threadData);
  }

  // A node is rebuilt only when what it shows changed, so a select someone has open or a focused button
  // survives refreshes caused by other messages.
  function cached(key, signature, build) {
    const hit = S.messageCache.get(key);
    if (hit && hit.signature === signature) {
      S.nextCache.set(key, hit);
      return hit.node;
    }
    const node = build();
    S.nextCache.set(key, { signature, node });
    return node;
  }

  function timeline(messages, ephemerals, inThread) {
    const names = JSON.stringify([S.users, S.channels]);
    const items = [
      ...messages.map((m) => ({ ts: Number(m.ts), node: () => cached(`${inThread ? 't' : 'm'}:${m.ts}`, JSON.stringify(m) + names, () => messageNode(m, { inThread })) })),
      ...ephemerals
        .filter((e) => !S.dismissed.has(e.id))
        .map((e) => ({ ts: Number(e.ts), node: () => cached(`e:${e.id}`, JSON.stringify(e) + names, () => ephemeralNode(e)) })),
    ];
    items.sort((a, b) => a.ts - b.ts);
    return items.map((item) => item.node());
  }

  // --- rendering the page -------------------------------------------------------------------------------

  function render(state, thread) {
    S.nextCache = new Map();
    renderSidebar(state);
    const conversation = state.conversation;
    $('#conversation-title').textContent = conversation.kind === 'channel' ? `#${conversation.name}` : conversation.name;
    $('#conversation-note').textContent = conversation.kind === 'channel' ? 'Where TARS posts incident cards' : 'Direct message with TARS';
    $('#composer').placeholder = `Message ${conversation.kind === 'channel' ? '#' + conversation.name : conversation.name} — type /incident …`;

    const list = $('#messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80 || list.dataset.conversation !== conversation.id;
    const local = S.local.filter((note) => note.user === S.user && note.conversation === conversation.id);
    const nodes = timeline(state.messages, [...state.ephemerals, ...local], false);
    if (!nodes.length) nodes.push(h('div', { class: 'empty', text: 'Nothing here yet. Try /incident declare payments P1 Card payments failing' }));
    list.replaceChildren(...nodes);
    list.dataset.conversation = conversation.id;
    // Which persona's view is on screen: the switch is only done once their state has been drawn.
    list.dataset.user = state.user.user_id;
    if (atBottom) list.scrollTop = list.scrollHeight;

    renderThread(thread);
    S.messageCache = S.nextCache;
    renderModal(state.view);

    const latest = conversation.latest_ts;
    if (latest) localStorage.setItem(seenKey(conversation.id), latest);
  }

  function seenKey(conversation) {
    return `tars-sandbox-seen:${S.user}:${conversation}`;
  }

  function renderSidebar(state) {
    const item = (c) => {
      const seen = localStorage.getItem(seenKey(c.id));
      const unread = c.id !== state.conversation.id && c.latest_ts && (!seen || Number(c.latest_ts) > Number(seen));
      return h(
        'li',
        {},
        h(
          'button',
          {
            type: 'button',
            class: 'conversation' + (c.id === state.conversation.id ? ' active' : '') + (unread ? ' unread' : ''),
            dataset: { conversation: c.id, kind: c.kind },
            onclick: () => openConversation(c.id),
          },
          h('span', { class: 'conversation-icon', text: c.kind === 'channel' ? '#' : '●' }),
          h('span', { class: 'conversation-name', text: c.name }),
        ),
      );
    };
    $('#channels').replaceChildren(...state.conversations.filter((c) => c.kind === 'channel').map(item));
    const dms = state.conversations.filter((c) => c.kind === 'im');
    $('#dms').replaceChildren(...dms.map(item));
    $('#no-dms').hidden = dms.length > 0;
  }

  function renderThread(thread) {
    const pane = $('#thread');
    if (!S.thread || !thread) {
      pane.hidden = true;
      return;
    }
    pane.hidden = false;
    $('#thread-channel').textContent = S.channels[thread.channel] ? `#${S.channels[thread.channel]}` : '';
    const parent = cached(`p:${thread.ts}`, JSON.stringify(thread.parent) + JSON.stringify(S.users), () => messageNode(thread.parent, { inThread: true }));
    const count = thread.replies.length;
    const divider = h('div', { class: 'thread-divider', text: `${count} ${count === 1 ? 'reply' : 'replies'}` });
    $('#thread-messages').replaceChildren(parent, divider, ...timeline(thread.replies, thread.ephemerals, true));
  }

  // --- modals -------------------------------------------------------------------------------------------

  function renderModal(view) {
    const root = $('#modal-root');
    if (!view || S.closedViews.has(view.id)) {
      if (S.shownView) {
        root.replaceChildren();
        S.shownView = null;
      }
      return;
    }
    // The same modal is left alone, with what has been typed in it; a new or updated one replaces it.
    if (S.shownView && S.shownView.id === view.id && S.shownView.hash === view.hash) return;
    S.shownView = { id: view.id, hash: view.hash };
    const ctx = { channel: null, ts: null, interactive: false, modal: true };
    const form = h(
      'form',
      { class: 'dialog modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'modal-title', dataset: { viewId: view.id, callbackId: view.callback_id } },
      h(
        'div',
        { class: 'modal-header' },
        h('h2', { id: 'modal-title', text: view.title }),
        h('button', { type: 'button', class: 'icon-button modal-x', 'aria-label': 'Close', onclick: () => closeModal(view) }, '×'),
      ),
      h('div', { class: 'modal-error', role: 'alert', hidden: true }),
      h('div', { class: 'modal-body' }, renderBlocks(view.blocks, ctx)),
      h(
        'div',
        { class: 'modal-footer' },
        h('button', { type: 'button', class: 'bk-button modal-cancel', onclick: () => closeModal(view) }, view.close || 'Cancel'),
        view.submit && h('button', { type: 'submit', class: 'bk-button bk-primary modal-submit' }, view.submit),
      ),
    );
    // No browser validation: the form's rules are TARS's, and its answer shows them as Slack would.
    form.noValidate = true;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submitModal(view, form);
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') closeModal(view);
    });
    root.replaceChildren(h('div', { class: 'backdrop' }, form));
    const first = form.querySelector('.block-input input, .block-input textarea, .block-input select');
    if (first) first.focus();
  }

  const TEXT_INPUTS = { plain_text_input: 'text', number_input: 'text', email_text_input: 'email', url_text_input: 'url' };

  function inputBlock(block) {
    const element = block.element || {};
    const id = `input-${block.block_id}`;
    let control;
    if (element.type in TEXT_INPUTS) {
      const props = {
        id,
        class: 'input-control',
        placeholder: plainString(element.placeholder) || null,
        maxlength: element.max_length || null,
      };
      if (element.type === 'plain_text_input' && element.multiline) control = h('textarea', { ...props, rows: 4 });
      else {
        // number_input stays a text box so what TARS thinks of "lots" is what the person sees.
        control = h('input', { ...props, type: TEXT_INPUTS[element.type], inputmode: element.type === 'number_input' ? (element.is_decimal_allowed ? 'decimal' : 'numeric') : null });
      }
      control.value = element.initial_value || '';
    } else if (['static_select', 'external_select', 'users_select', 'multi_static_select'].includes(element.type)) {
      const multiple = element.type === 'multi_static_select';
      control = h('select', { id, class: 'input-control', multiple });
      if (!multiple) control.append(h('option', { value: '', text: plainString(element.placeholder) || 'Select an option' }));
      const options =
        element.type === 'users_select'
          ? S.personas.map((p) => ({ value: p.user_id, text: { text: p.name } }))
          : optionsOf(element).flat;
      const initial = new Set(
        [element.initial_option && element.initial_option.value, element.initial_user, ...(element.initial_options || []).map((o) => o.value)].filter(Boolean),
      );
      options.forEach((option) => {
        const node = h('option', { value: option.value, text: plainString(option.text) });
        node.selected = initial.has(option.value);
        control.append(node);
      });
    } else if (element.type === 'checkboxes' || element.type === 'radio_buttons') {
      const kind = element.type === 'checkboxes' ? 'checkbox' : 'radio';
      const initial = new Set([...(element.initial_options || []), element.initial_option].filter(Boolean).map((o) => o.value));
      control = h(
        'div',
        { class: 'choices', id, role: 'group' },
        optionsOf(element).flat.map((option, index) => {
          const box = h('input', { type: kind, name: `${block.block_id}-${element.action_id}`, value: option.value, id: `${id}-${index}` });
          box.checked = initial.has(option.value);
          return h(
            'label',
            { class: 'choice', for: `${id}-${index}` },
            box,
            h('span', {}, textObject(option.text)),
            option.description && h('span', { class: 'choice-description' }, textObject(option.description)),
          );
        }),
      );
    } else if (element.type === 'datepicker' || element.type === 'timepicker') {
      control = h('input', { id, class: 'input-control', type: element.type === 'datepicker' ? 'date' : 'time' });
      control.value = element.initial_date || element.initial_time || '';
    } else {
      control = h('div', { class: 'bk-unsupported', text: `[${element.type} is not supported in the sandbox page]` });
    }
    return h(
      'div',
      { class: 'block block-input', dataset: { blockId: block.block_id, actionId: element.action_id || '', type: element.type || '' } },
      h('label', { class: 'input-label', for: id }, plainString(block.label), block.optional && h('span', { class: 'optional', text: ' (optional)' })),
      control,
      block.hint && h('div', { class: 'input-hint' }, textObject(block.hint)),
      h('div', { class: 'input-error', role: 'alert', hidden: true }),
    );
  }

  function collectValues(form) {
    const values = {};
    for (const wrap of form.querySelectorAll('.block-input')) {
      const { blockId, actionId, type } = wrap.dataset;
      let value;
      if (type in TEXT_INPUTS || type === 'datepicker' || type === 'timepicker') {
        const text = wrap.querySelector('.input-control').value;
        value = text === '' ? null : text;
      } else if (type === 'multi_static_select') {
        value = [...wrap.querySelector('select').selectedOptions].map((o) => o.value);
      } else if (['static_select', 'external_select', 'users_select'].includes(type)) {
        value = wrap.querySelector('select').value || null;
      } else if (type === 'checkboxes') {
        value = [...wrap.querySelectorAll('input:checked')].map((box) => box.value);
      } else if (type === 'radio_buttons') {
        const checked = wrap.querySelector('input:checked');
        value = checked ? checked.value : null;
      } else {
        continue; // unsupported: SignedSlackClient reports its initial value, as an untouched field
      }
      (values[blockId] = values[blockId] || {})[actionId] = value;
    }
    return values;
  }

  function showErrors(form, errors) {
    const general = form.querySelector('.modal-error');
    const unplaced = [];
    for (const wrap of form.querySelectorAll('.block-input')) {
      const message = errors[wrap.dataset.blockId];
      const slot = wrap.querySelector('.input-error');
      slot.textContent = message || '';
      slot.hidden = !message;
      wrap.classList.toggle('has-error', Boolean(message));
    }
    for (const [blockId, message] of Object.entries(errors)) {
      if (!form.querySelector(`.block-input[data-block-id="${CSS.escape(blockId)}"]`)) unplaced.push(`${blockId}: ${message}`);
    }
    general.textContent = unplaced.join('\n');
    general.hidden = unplaced.length === 0;
    const first = form.querySelector('.has-error .input-control, .has-error input');
    if (first) first.focus();
  }

  async function submitModal(view, form) {
    const button = form.querySelector('.modal-submit');
    if (button) {
      button.disabled = true;
      button.classList.add('busy');
    }
    try {
      const answer = await api('/api/view', { user: S.user, view_id: view.id, values: collectValues(form) });
      if (answer.response_action === 'errors') {
        showErrors(form, answer.errors || {});
        return;
      }
      if (!answer.response_action || answer.response_action === 'clear') {
        S.closedViews.add(view.id);
        renderModal(null);
      }
    } catch (error) {
      showErrors(form, {});
      const general = form.querySelector('.modal-error');
      general.textContent = error.message;
      general.hidden = false;
    } finally {
      if (button) {
        button.disabled = false;
        button.classList.remove('busy');
      }
      refresh();
    }
  }

  async function closeModal(view) {
    S.closedViews.add(view.id);
    renderModal(null);
    try {
      await api('/api/view/close', { user: S.user, view_id: view.id });
    } catch (error) {
      if (error.status !== 409) toast(error.message);
    }
    refresh();
  }

  // --- composer -----------------------------------------------------------------------------------------

  function commandUsage(name) {
    const found = S.commands.find((c) => c.name === name);
    if (!found) return null;
    if (found.usage) return found.usage;
    return `${S.commandName} ${name} (another name for a command in ${S.commandName} help)`;
  }

  function updateCompletion() {
    const value = $('#composer').value;
    let items = [];
    let match;
    if ((match = /^\/(\S*)$/.exec(value)) && S.commandName.startsWith(value) && value !== S.commandName + ' ') {
      items = [{ name: S.commandName, detail: 'TARS incident commands', insert: S.commandName + ' ' }];
      if (value === S.commandName) items = [];
    } else if ((match = new RegExp(`^${S.commandName}\\s+(\\S*)$`).exec(value))) {
      const word = match[1].toLowerCase();
      items = S.commands
        .filter((c) => c.name.startsWith(word))
        .map((c) => ({ name: c.name, detail: c.usage || 'alias', insert: `${S.commandName} ${c.name} ` }));
      if (items.length === 1 && items[0].name === word) items = [];
    }
    S.completion = { items, index: Math.min(S.completion.index, Math.max(items.length - 1, 0)) };
    const box = $('#completions');
    box.hidden = items.length === 0;
    box.replaceChildren(
      ...items.map((item, index) =>
        h(
          'div',
          {
            class: 'completion' + (index === S.completion.index ? ' active' : ''),
            role: 'option',
            'aria-selected': index === S.completion.index ? 'true' : 'false',
            dataset: { name: item.name },
            onmousedown: (event) => {
              event.preventDefault();
              acceptCompletion(index);
            },
          },
          h('span', { class: 'completion-name', text: item.name }),
          h('span', { class: 'completion-usage', text: item.detail }),
        ),
      ),
    );
    const typing = new RegExp(`^${S.commandName}\\s+(\\S+)\\s`).exec(value);
    const hint = $('#usage-hint');
    const usage = typing ? commandUsage(typing[1].toLowerCase()) : null;
    hint.hidden = !usage;
    hint.textContent = usage || '';
  }

  function acceptCompletion(index) {
    const item = S.completion.items[index];
    if (!item) return;
    const composer = $('#composer');
    composer.value = item.insert;
    composer.focus();
    S.completion.index = 0;
    updateCompletion();
  }

  function onComposerKey(event) {
    const { items } = S.completion;
    const open = items.length > 0;
    if (open && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      S.completion.index = (S.completion.index + step + items.length) % items.length;
      updateCompletion();
      return;
    }
    // Enter on a word typed out in full sends it (`/incident ack` also lists `acknowledge`); Tab completes.
    const typed = $('#composer').value.trim().split(/\s+/).pop().toLowerCase();
    const complete = open && items[S.completion.index].name === typed;
    if (open && (event.key === 'Tab' || (event.key === 'Enter' && !event.shiftKey && !complete))) {
      event.preventDefault();
      acceptCompletion(S.completion.index);
      return;
    }
    if (open && event.key === 'Escape') {
      S.completion = { items: [], index: 0 };
      $('#completions').hidden = true;
      return;
    }
    const composer = $('#composer');
    if (!open && event.key === 'ArrowUp' && (composer.value === '' || S.historyIndex >= 0) && S.history.length) {
      event.preventDefault();
      S.historyIndex = Math.min(S.historyIndex + 1, S.history.length - 1);
      composer.value = S.history[S.history.length - 1 - S.historyIndex];
      return;
    }
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  }

  function addLocal(text, error) {
    S.local.push({
      id: `local:${Date.now()}:${S.local.length}`,
      ts: String(Date.now() / 1000),
      text,
      error,
      local: true,
      blocks: [],
      user: S.user,
      conversation: S.conversation,
    });
    if (S.state) render(S.state, S.threadData);
  }

  async function send() {
    const composer = $('#composer');
    const text = composer.value.trim();
    if (!text) return;
    if (!text.startsWith('/')) {
      addLocal(`TARS only reads ${S.commandName} commands, so the sandbox does not post plain messages. Try \`${S.commandName} help\`.`, false);
      return;
    }
    composer.value = '';
    S.history.push(text);
    S.historyIndex = -1;
    updateCompletion();
    const form = $('#composer-form');
    form.classList.add('busy');
    try {
      const answer = await api('/api/command', { user: S.user, text, channel: S.conversation });
      if (answer.local_ack) addLocal(answer.local_ack, false);
    } catch (error) {
      // As Slack does when a command fails: the text stays for another try, the reason is private.
      if (!composer.value) composer.value = text;
      addLocal(`${text.split(/\s/)[0]} failed: ${error.message}`, true);
    } finally {
      form.classList.remove('busy');
      refresh();
    }
  }

  // --- data ---------------------------------------------------------------------------------------------

  async function api(path, body) {
    const options =
      body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  async function refresh() {
    if (S.fetching) {
      S.again = true;
      return;
    }
    S.fetching = true;
    try {
      do {
        S.again = false;
        const user = S.user;
        const conversation = S.conversation;
        let state;
        try {
          state = await api('/api/state?' + new URLSearchParams({ user, conversation }));
        } catch (error) {
          if (error.status === 404 && conversation !== S.channel.id) {
            S.conversation = S.channel.id; // a DM of the persona acted as before
            S.again = true;
            continue;
          }
          throw error;
        }
        let thread = null;
        if (S.thread) {
          try {
            thread = await api('/api/thread?' + new URLSearchParams({ user, channel: S.thread.channel, ts: S.thread.ts }));
          } catch (error) {
            if (error.status !== 404) throw error;
            S.thread = null;
          }
        }
        if (user !== S.user || conversation !== S.conversation) {
          S.again = true;
          continue;
        }
        Object.assign(S.users, state.users, thread ? thread.users : {});
        Object.assign(S.channels, state.channels, thread ? thread.channels : {});
        S.state = state;
        S.threadData = thread;
        render(state, thread);
      } while (S.again);
    } catch (error) {
      toast(`Could not refresh: ${error.message}`);
    } finally {
      S.fetching = false;
    }
  }

  function connectEvents() {
    const status = $('#connection');
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      status.textContent = 'live';
      status.className = 'connection live';
    });
    events.addEventListener('error', () => {
      // EventSource reconnects by itself; the first event after that makes the page fetch again.
      status.textContent = 'reconnecting…';
      status.className = 'connection down';
    });
    events.addEventListener('changed', (event) => {
      const version = Number(event.data);
      if (!(S.state && S.state.version >= version && !S.fetching)) refresh();
    });
  }

  // --- navigation ---------------------------------------------------------------------------------------

  function openConversation(id) {
    if (id === S.conversation) return;
    S.conversation = id;
    refresh();
  }

  function openThread(channel, ts) {
    S.thread = { channel, ts };
    refresh();
  }

  function closeThread() {
    S.thread = null;
    S.threadData = null;
    $('#thread').hidden = true;
  }

  function switchPersona(userId) {
    if (!S.personas.some((p) => p.user_id === userId)) return;
    S.user = userId;
    $('#persona').value = userId;
    localStorage.setItem('tars-sandbox-persona', userId);
    const url = new URL(window.location.href);
    url.searchParams.set('as', userId);
    window.history.replaceState(null, '', url);
    // Modals and private replies belong to a person: show the new persona's, not the last one's.
    S.shownView = null;
    $('#modal-root').replaceChildren();
    if (S.conversation !== S.channel.id) S.conversation = S.channel.id;
    refresh();
  }

  function toast(message) {
    const node = h('div', { class: 'toast', role: 'alert', text: message });
    $('#toasts').append(node);
    setTimeout(() => node.remove(), 8000);
  }

  async function init() {
    const [personas, commands] = await Promise.all([api('/api/personas'), api('/api/commands')]);
    S.title = personas.title;
    $('#controls').replaceChildren(
      ...(personas.controls || []).map((control) =>
        h('button', {
          type: 'button',
          class: 'control',
          text: control.label,
          onclick: async () => {
            try {
              const result = await api('/api/control', { id: control.id });
              toast(result.message);
            } catch (error) {
              toast(error.message);
            }
          },
        }),
      ),
    );
    S.personas = personas.personas;
    S.channel = personas.channel;
    S.conversation = personas.channel.id;
    S.channels[personas.channel.id] = personas.channel.name;
    S.commandName = commands.command;
    S.commands = commands.subcommands;
    document.title = S.title;
    $('#workspace-title').textContent = S.title;
    $('#workspace-name').textContent = S.title;

    const select = $('#persona');
    select.replaceChildren(...S.personas.map((p) => h('option', { value: p.user_id, text: `${p.name} — ${p.role}` })));
    select.addEventListener('change', () => switchPersona(select.value));
    const wanted = new URL(window.location.href).searchParams.get('as') || localStorage.getItem('tars-sandbox-persona');
    S.user = S.personas.some((p) => p.user_id === wanted) ? wanted : S.personas[0].user_id;
    select.value = S.user;

    const composer = $('#composer');
    composer.addEventListener('input', () => {
      S.historyIndex = -1;
      updateCompletion();
    });
    composer.addEventListener('keydown', onComposerKey);
    composer.addEventListener('blur', () => setTimeout(() => ($('#completions').hidden = true), 150));
    composer.addEventListener('focus', updateCompletion);
    $('#composer-form').addEventListener('submit', (event) => {
      event.preventDefault();
      send();
    });
    $('#thread-close').addEventListener('click', closeThread);

    connectEvents();
    await refresh();
    document.body.dataset.ready = 'true';
    composer.focus();
  }

  init().catch((error) => toast(`The sandbox page could not start: ${error.message}`));
})();
