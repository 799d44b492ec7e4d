import os
import subprocess
import sys

import pytest

from styletransfer import booklog
from styletransfer.booklog import Entry
from styletransfer.cli.compare import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the article variant's first stage-1 line and last stage-2 line, as the reference doc quotes them
ARTICLE_FIRST = 'epoch  50,内容损失 59.70,样式损失 77.01,总变差损失 14.96, 0.04秒'
ARTICLE_LAST = 'epoch 250,内容损失 7.42,样式损失 7.00,总变差损失 4.93, 0.27秒'
BOOK_SIZES = ((225, 150, 500, 200), (450, 300, 300, 100))


def our_log(stages, change=lambda stage, epoch, term, value: value, skip=()):
    """Write `stages` the way our tool logs them: a header per stage, then the book's lines;
    `change` may alter any number, (stage, epoch) pairs in `skip` are left out."""
    lines = ['# our run', 'loading VGG-19 weights ...']
    for number, (stage, (width, height, iterations, decay)) in enumerate(
            zip(stages, BOOK_SIZES), 1):
        lines.append(booklog.format_stage_header(number, len(stages), width, height,
                                                 iterations, 0.01, decay, 'zoo'))
        changes = dict(stage.lr_changes)
        for entry in stage.entries:
            if (number, entry.epoch) not in skip:
                losses = [change(number, entry.epoch, term, getattr(entry, term))
                          for term in booklog.TERMS]
                lines.append(booklog.format_epoch(entry.epoch, *losses, 0.5))
            if entry.epoch in changes:
                lines.append(booklog.format_lr(changes[entry.epoch]))
    return '\n'.join(lines) + '\n'


def write(tmp_path, text, name='ours.log'):
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return str(path)


# ---------------------------------------------------------------------------------- formatting

def test_format_epoch_is_the_books_line():
    assert (booklog.format_epoch(50, 10.11, 29.39, 3.46, 0.03)
            == 'epoch  50, content loss 10.11, style loss 29.39, TV loss 3.46, 0.03 sec')
    assert (booklog.format_epoch(450, 5.414, 7.466, 4.315, 0.0349)
            == 'epoch 450, content loss 5.41, style loss 7.47, TV loss 4.32, 0.03 sec')


def test_format_lr_is_the_books_line():
    assert booklog.format_lr(0.001) == 'change lr to 1.0e-03'
    assert booklog.format_lr(1e-4) == 'change lr to 1.0e-04'


def test_format_stage_header():
    header = booklog.format_stage_header(1, 2, 225, 150, 500, 0.01, 200, 'zoo')
    assert header == 'stage 1/2: 225x150, 500 iterations, lr 1.0e-02, x0.1 every 200, weights zoo'
    assert booklog.format_stage_header(2, 2, 450, 300, 300, 0.01, 0, 'random').endswith(
        'lr 1.0e-02, no lr decay, weights random')


# ------------------------------------------------------------------------------------- parsing

def test_book_reference_has_both_stages():
    first, second = booklog.load_book_reference()
    assert [e.epoch for e in first.entries] == list(range(50, 500, 50))
    assert [e.epoch for e in second.entries] == list(range(50, 300, 50))
    assert first.entries[0] == Entry(50, 10.11, 29.39, 3.46, 0.03)
    assert second.entries[-1] == Entry(250, 8.94, 8.13, 2.70, 0.10)
    assert first.lr_changes == ((200, 1e-3), (400, 1e-4))
    assert second.lr_changes == ((100, 1e-3), (200, 1e-4))
    assert first.header == second.header == ''


def test_book_spread_is_data():
    spread = booklog.load_book_spread()
    assert sorted(spread) == [(1, 50), (1, 450), (2, 50), (2, 250)]
    assert spread[2, 50] == {'content': (13.76, 13.88), 'style': (13.66, 13.73),
                             'tv': (2.38, 2.38)}


def test_parse_article_chinese_lines():
    stages = booklog.parse_log(ARTICLE_FIRST + '\n' + ARTICLE_LAST + '\n')
    assert stages[0].entries == (Entry(50, 59.70, 77.01, 14.96, 0.04),
                                 Entry(250, 7.42, 7.00, 4.93, 0.27))


@pytest.mark.parametrize('line', [
    'epoch  50，内容损失 59.70，样式损失 77.01，总变差损失 14.96， 0.04秒',
    'epoch  50 , 内容损失 59.70 , 样式损失 77.01 , 总变差损失 14.96 , 0.04 秒',
    '  epoch 50,内容损失59.70,样式损失77.01,总变差损失14.96,0.04秒  ',
])
def test_parse_tolerates_commas_and_spaces(line):
    assert booklog.parse_log(line)[0].entries == (Entry(50, 59.70, 77.01, 14.96, 0.04),)


def test_parse_ignores_other_lines():
    text = '\n'.join([
        '# epoch  50, content loss 1.00, style loss 1.00, TV loss 1.00, 0.01 sec',
        '',
        'iteration 37/500 [=====>     ] 0.03 sec',
        'stage two begins',
        'epoch 50: loss 12.3',
        'progress 49/500\repoch  50, content loss 10.11, style loss 29.39, TV loss 3.46, 0.03 sec',
        'saved result.png',
    ])
    stages = booklog.parse_log(text)
    assert len(stages) == 1
    assert stages[0].entries == (Entry(50, 10.11, 29.39, 3.46, 0.03),)
    assert booklog.parse_log('nothing to see\n# here\n') == []


def test_stage_split_by_header():
    text = '\n'.join([
        booklog.format_stage_header(1, 2, 200, 100, 100, 0.01, 0, 'zoo'),
        booklog.format_epoch(50, 3, 2, 1, 0.1),
        booklog.format_lr(1e-3),
        booklog.format_stage_header(2, 2, 560, 320, 300, 0.01, 100, 'zoo'),
        booklog.format_epoch(100, 3, 2, 1, 0.1),     # larger epoch: only the header splits
    ])
    first, second = booklog.parse_log(text)
    assert first.header.startswith('stage 1/2: 200x100')
    assert second.header.startswith('stage 2/2: 560x320')
    assert [e.epoch for e in first.entries] == [50]
    assert [e.epoch for e in second.entries] == [100]
    assert first.lr_changes == ((50, 1e-3),) and second.lr_changes == ()


def test_stage_split_by_epoch_restart():
    epochs = [50, 100, 50, 50, 100]
    text = '\n'.join(booklog.format_epoch(e, 1, 1, 1, 0) for e in epochs)
    assert [[e.epoch for e in s.entries] for s in booklog.parse_log(text)] == [
        [50, 100], [50], [50, 100]]


def test_lr_change_before_any_entry():
    stage, = booklog.parse_log('change lr to 1.0e-03\n' + booklog.format_epoch(50, 1, 1, 1, 0))
    assert stage.lr_changes == ((0, 1e-3),)


# ----------------------------------------------------------------------------------- comparing

def test_band_rule():
    assert booklog.accepted_band(10.0, 0.015) == pytest.approx((9.845, 10.155))
    # a measured spread wider than the relative band widens it, a narrower one does not
    assert booklog.accepted_band(10.0, 0.001, (9.9, 10.0)) == pytest.approx((9.895, 10.015))
    assert booklog.accepted_band(10.0, 0.015, (10.0, 10.0)) == pytest.approx((9.845, 10.155))


def test_book_against_itself_is_ok():
    book = booklog.load_book_reference()
    for spread in (None, booklog.load_book_spread()):
        comparison = booklog.compare(book, book, spread=spread)
        assert comparison.ok and comparison.inside == comparison.total == 42


def test_spread_widens_a_tight_tolerance():
    book = booklog.load_book_reference()
    ours = booklog.parse_log(our_log(book, lambda s, e, t, v: 13.76 if (s, e, t) == (
        2, 50, 'content') else v))
    assert not booklog.compare(ours, book, rel_tol=0.001).ok
    assert booklog.compare(ours, book, rel_tol=0.001, spread=booklog.load_book_spread()).ok


def test_edge_of_band_is_inside():
    reference = booklog.parse_log(booklog.format_epoch(50, 10.0, 10.0, 10.0, 0))
    ours = booklog.parse_log(booklog.format_epoch(50, 10.155, 9.845, 10.16, 0))
    assert [c.inside for c in booklog.compare(ours, reference).checks] == [True, True, False]


def test_log_inside_the_spread_exits_0(tmp_path, capsys):
    book = booklog.load_book_reference()
    path = write(tmp_path, our_log(book, lambda s, e, t, v: v * 1.005))
    assert main([path]) == 0
    out = capsys.readouterr().out
    assert 'OUT' not in out
    assert out.rstrip().endswith(': MATCH') and '42 of 42 numbers inside' in out


def test_one_number_off_exits_1_and_is_marked(tmp_path, capsys):
    book = booklog.load_book_reference()
    path = write(tmp_path, our_log(book, lambda s, e, t, v: v * 1.03 if (s, e, t) == (
        1, 200, 'style') else v))
    assert main([path]) == 1
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if 'OUT' in line]
    assert len(rows) == 1 and rows[0].split()[0] == '200'
    # marks follow the content, style and TV groups in that order; only style is out
    assert [word for word in rows[0].split() if word in ('ok', 'OUT')] == ['ok', 'OUT', 'ok']
    assert '8.35' in rows[0] and '+2.96%' in rows[0]
    assert 'stage 1 epoch 200 style: ours 8.35' in out
    assert '41 of 42 numbers inside' in out and out.rstrip().endswith('MISMATCH')


def test_missing_epoch_is_outside(tmp_path, capsys):
    book = booklog.load_book_reference()
    text = our_log(book, skip={(2, 150)})
    comparison = booklog.compare(booklog.parse_log(text), book)
    assert not comparison.ok and comparison.inside == 39
    missing = [row for row in comparison.rows if row.missing]
    assert [(row.stage, row.epoch) for row in missing] == [(2, 150)]
    assert main([write(tmp_path, text)]) == 1
    assert 'stage 2 epoch 150 content: ours missing' in capsys.readouterr().out


def test_missing_stage_is_outside():
    book = booklog.load_book_reference()
    comparison = booklog.compare(book[:1], book)
    assert comparison.inside == 27 and not comparison.ok


def test_extra_epochs_are_ignored():
    reference = booklog.parse_log(booklog.format_epoch(100, 1, 1, 1, 0))
    ours = booklog.parse_log('\n'.join(booklog.format_epoch(e, 1, 1, 1, 0) for e in (50, 100)))
    assert booklog.compare(ours, reference).ok


def test_chinese_log_against_explicit_reference(tmp_path, capsys):
    reference = write(tmp_path, ARTICLE_FIRST + '\n', 'article.log')
    ours = write(tmp_path, booklog.format_epoch(50, 59.9, 77.0, 15.0, 0.1) + '\n')
    assert main([ours, reference]) == 0
    assert 'six-run spread' not in capsys.readouterr().out
    assert main([ours, reference, '--rel-tol', '0.001']) == 1


def test_no_log_lines_exits_2(tmp_path, capsys):
    path = write(tmp_path, '# nothing logged\nloading weights\n')
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'no loss log lines' in err
    assert 'Traceback' not in err


def test_unreadable_input_exits_2(tmp_path, capsys):
    ours = write(tmp_path, booklog.format_epoch(50, 1, 1, 1, 0))
    missing = str(tmp_path / 'missing.log')
    for args in ([missing], [ours, missing], [str(tmp_path)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and 'cannot read' in err


def test_bad_rel_tol_exits_2(tmp_path, capsys):
    ours = write(tmp_path, booklog.format_epoch(50, 1, 1, 1, 0))
    assert main([ours, '--rel-tol', '-1']) == 2
    assert main([ours, '--rel-tol', 'x']) == 2


def test_utf16_log_from_powershell(tmp_path):
    path = tmp_path / 'ours.log'
    path.write_text(our_log(booklog.load_book_reference()), encoding='utf-16')
    assert main([str(path)]) == 0


def test_script_runs_from_a_clone(tmp_path):
    script = os.path.join(REPO, 'scripts', 'compare_logs.py')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    book = str(booklog.BOOK_LOG)
    result = subprocess.run([sys.executable, script, book], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(': MATCH')
